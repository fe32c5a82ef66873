"""A fail-closed 503 (Redis unreachable, the policy failing closed) is a refusal the policy asked for, not a
server error: logged as a WARNING at most once per interval (with the number refused), never as Django's ERROR
`django.request` line per request, which flooded the error alerting while Redis was down."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from apps.ratelimits.limiter import RedisSlidingWindow
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache
from apps.ratelimits.throttling import limiter, refusal_log
from tests.helpers import closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def fail_closed_without_redis(settings):
    """The limiter pointed at a port nothing listens on (a real connection failure), the audit scope failing
    closed, and a fresh refusal log."""
    settings.CACHE_REDIS_BREAKER_SECONDS = 600  # no probe of the closed port while the test runs
    saved = limiter._backend
    limiter._backend = RedisSlidingWindow(redis.Redis(port=closed_port(), socket_connect_timeout=0.2))
    limiter.breaker.success()
    RateLimitPolicy.objects.filter(scope="audit_logs").update(fail_open=False)
    policy_cache._bump()
    saved_log = refusal_log._logged_at, refusal_log._refused, refusal_log.interval
    refusal_log._logged_at, refusal_log._refused = None, 0
    try:
        yield
    finally:
        refusal_log._logged_at, refusal_log._refused, refusal_log.interval = saved_log
        limiter._backend = saved
        deadline = time.monotonic() + 30  # a background probe started by the test: let it end before the next
        while limiter.breaker._probing and time.monotonic() < deadline:
            time.sleep(0.05)
        limiter.breaker.success()
        policy_cache._bump()


def _refused(api, token, count: int) -> None:
    for _ in range(count):
        response = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 503
        assert response.json()["code"] == "rate_limiter_unavailable"


def test_a_fail_closed_503_logs_no_error(api, issue_token, caplog, fail_closed_without_redis):
    caplog.set_level(logging.INFO)
    _refused(api, issue_token("audit:read"), 3)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]  # before: "Service Unavailable: /api/v1/audit/" x 3
    warnings = [r for r in caplog.records if r.name == "apps.ratelimits.throttling"]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert "refused (503, fail-closed)" in warnings[0].getMessage()
    assert "audit_logs" in warnings[0].getMessage()
    assert "/api/" not in warnings[0].getMessage()  # a path may carry a patient's id: the scope alone is named


def test_refusals_within_the_interval_make_one_line_with_their_count(
    api, issue_token, caplog, fail_closed_without_redis
):
    refusal_log.interval = 3600  # every refusal of the test falls within one interval
    caplog.set_level(logging.INFO)
    token = issue_token("audit:read")
    _refused(api, token, 4)
    lines = [r for r in caplog.records if r.name == "apps.ratelimits.throttling"]
    assert len(lines) == 1 and "1 request(s)" in lines[0].getMessage()

    refusal_log._logged_at -= 3600  # the interval past (set rather than slept)
    _refused(api, token, 1)
    lines = [r for r in caplog.records if r.name == "apps.ratelimits.throttling"]
    assert len(lines) == 2 and "4 request(s)" in lines[1].getMessage()  # the 3 held back and this one


def test_other_5xx_are_still_logged_as_errors(rf, caplog):
    """Only the limiter's own refusal is spared: the middleware leaves any other 5xx to Django's ERROR line."""
    from django.http import HttpResponse
    from django.utils.log import log_response

    from apps.ratelimits.throttling import RateLimitHeadersMiddleware

    request = rf.get("/api/v1/audit/")
    response = RateLimitHeadersMiddleware(lambda r: HttpResponse(status=503))(request)
    caplog.set_level(logging.INFO)
    log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
    assert [r.levelno for r in caplog.records if r.name == "django.request"] == [logging.ERROR]
