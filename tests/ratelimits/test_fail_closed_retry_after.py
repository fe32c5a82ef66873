"""A fail-closed 503 (Redis unreachable, the policy failing closed) always tells the client when to retry:
Retry-After in whole seconds, at least 1, and the time left of the breaker's back-off, not the whole of it."""

from __future__ import annotations

import time

import pytest
import redis

from apps.ratelimits.limiter import RedisSlidingWindow
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache
from apps.ratelimits.throttling import limiter
from tests.helpers import closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def fail_closed_without_redis():
    """The limiter pointed at a port nothing listens on (a real connection failure, not a mock), and the audit
    scope failing closed."""
    saved = limiter._backend
    limiter._backend = RedisSlidingWindow(redis.Redis(port=closed_port(), socket_connect_timeout=0.2))
    limiter.breaker.success()
    RateLimitPolicy.objects.filter(scope="audit_logs").update(fail_open=False)
    policy_cache._bump()
    try:
        yield
    finally:
        limiter._backend = saved
        deadline = time.monotonic() + 30  # a background probe started by the test: let it end before the next
        while limiter.breaker._probing and time.monotonic() < deadline:
            time.sleep(0.05)
        limiter.breaker.success()
        policy_cache._bump()


def _audit(api, token):
    return api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_zero_back_off_still_sends_retry_after_of_at_least_a_second(
    api, issue_token, settings, fail_closed_without_redis
):
    settings.CACHE_REDIS_BREAKER_SECONDS = 0  # before: Retry-After 0, which DRF leaves out
    response = _audit(api, issue_token("audit:read"))
    assert response.status_code == 503
    assert response.json()["code"] == "rate_limiter_unavailable"
    assert int(response["Retry-After"]) >= 1


def test_retry_after_is_the_time_left_of_the_back_off(api, issue_token, settings, fail_closed_without_redis):
    settings.CACHE_REDIS_BREAKER_SECONDS = 600
    token = issue_token("audit:read")
    first = _audit(api, token)  # this one finds Redis unreachable and opens the breaker
    assert first.status_code == 503
    assert 1 <= int(first["Retry-After"]) <= 600
    assert limiter.breaker.state == "open"
    # As if the breaker had opened 400 s ago (set rather than slept): 200 s of its back-off are left.
    limiter.breaker._failed_at = time.monotonic() - 400
    later = _audit(api, token)
    assert later.status_code == 503
    assert 1 <= int(later["Retry-After"]) <= 200  # before: the whole 600


def test_a_back_off_already_past_while_its_probe_runs_says_one_second(
    api, issue_token, settings, fail_closed_without_redis
):
    settings.CACHE_REDIS_BREAKER_SECONDS = 5
    token = issue_token("audit:read")
    assert _audit(api, token).status_code == 503
    limiter.breaker._failed_at = time.monotonic() - 60
    limiter.breaker._probing = True  # a probe in flight (started by another caller): the breaker stays open
    try:
        response = _audit(api, token)
    finally:
        limiter.breaker._probing = False
    assert response.status_code == 503
    assert response["Retry-After"] == "1"  # before: the whole 5 s
