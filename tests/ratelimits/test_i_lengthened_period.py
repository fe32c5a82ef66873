"""An admin lengthens a policy's period: the hits admitted under the shorter one still count under the new one, in
Redis as in the database (review c, finding 2: Redis's logs expired by the old period, and a client got 4 in
1.2 s under "2 per 60 s", while the database limiter refused)."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings

from apps.ratelimits import services
from apps.ratelimits.limiter import DatabaseSlidingWindow, RedisSlidingWindow
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache
from apps.ratelimits.throttling import limiter
from tests.ratelimits.test_overview_limit_edits_d import _form

pytestmark = pytest.mark.django_db
OLD_PERIOD_OVER = 1.2  # seconds: past the old period of 1 s, well inside the new one of 60 s


@pytest.fixture(params=["redis", "database"])
def backend(request):
    """The process's limiter on Redis (the deployment's) or on the database (no REDIS_URL); the audit scope at 2
    per 1 s, not adaptive, with no log of it left in Redis by an earlier run."""
    store = redis.Redis.from_url(settings.REDIS_URL)
    saved = limiter._backend
    limiter._backend = RedisSlidingWindow(store) if request.param == "redis" else DatabaseSlidingWindow()
    limiter.breaker.success()

    def forget_logs():
        for key in [*store.scan_iter(match="rl:audit_logs:*"), b"rl-keep:audit_logs"]:
            store.delete(key)

    forget_logs()
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=2, period_seconds=1, burst_per_second=None,
                                                               adaptive=False, current_factor=1.0)  # fmt: skip
    policy_cache.forget()
    yield limiter._backend
    limiter._backend = saved
    forget_logs()
    policy_cache.forget()


def test_an_admin_lengthening_the_period_over_http_keeps_the_hits_counted(
    backend, api, issue_token, admin_client, django_capture_on_commit_callbacks
):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")
    assert [api.get("/api/v1/audit/").status_code for _ in range(2)] == [200, 200]  # 2 per 1 s

    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    with django_capture_on_commit_callbacks(execute=True):  # the edit commits, as the admin's does
        response = admin_client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/",
                                     _form(policy, period_seconds=60))  # fmt: skip
    assert response.status_code == 302, response.content[:500]
    assert RateLimitPolicy.objects.get(pk=policy.pk).period_seconds == 60
    time.sleep(OLD_PERIOD_OVER)  # the 2 hits' old period is over; under 2 per 60 s they still count

    later = api.get("/api/v1/audit/")
    assert (later.status_code, later["RateLimit-Limit"], later["RateLimit-Remaining"]) == (429, "2", "0"), (
        f"{type(backend).__name__}: a third request within 60 s under 2 per 60 s was let in"
    )


def test_hits_a_process_admits_before_it_reads_the_lengthened_period_still_count(
    backend, django_capture_on_commit_callbacks
):
    """Another process learns of the edit by its policies' poll (about a second): until then it limits by the old
    period, and the hits it admits must count once the new one is in force, whichever process counts them."""
    key = "audit_logs:c-lagging"
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    policy.period_seconds = 60
    with django_capture_on_commit_callbacks(execute=True):
        services.ratelimit_policy_edit_save(policy=policy, fields=["period_seconds", "updated_at"])

    stale = [limiter.hit(key, limit=2, window_seconds=1).allowed for _ in range(2)]  # the old policy, read before
    assert stale == [True, True]
    time.sleep(OLD_PERIOD_OVER)
    fresh = limiter.hit(key, limit=2, window_seconds=60)  # once the poll brought 2 per 60 s
    assert not fresh.allowed, f"{type(backend).__name__}: the lagging process's hits were forgotten"
    assert fresh.retry_after_seconds > 50


def test_a_shortening_after_a_lengthening_keeps_logs_for_the_shorter_period(django_capture_on_commit_callbacks):
    """A day typed by mistake, corrected to a minute: the keep floor the lengthening left is dropped, so the logs
    written after the correction expire by the minute (review c3: each client's log was kept a day, in the shared
    cache's Redis, one key per client seen that day)."""
    store = redis.Redis.from_url(settings.REDIS_URL)
    saved = limiter._backend
    limiter._backend = RedisSlidingWindow(store)
    limiter.breaker.success()

    def forget_logs():
        for key in [*store.scan_iter(match="rl:audit_logs:*"), b"rl-keep:audit_logs"]:
            store.delete(key)

    forget_logs()
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=100, period_seconds=60, adaptive=False)
    policy_cache.forget()
    try:
        policy = RateLimitPolicy.objects.get(scope="audit_logs")
        for period in (86_400, 60):
            policy.period_seconds = period
            with django_capture_on_commit_callbacks(execute=True):
                services.ratelimit_policy_edit_save(policy=policy, fields=["period_seconds", "updated_at"])
        assert store.get("rl-keep:audit_logs") is None
        for n in range(20):  # clients seen after the correction, one request each
            limiter.hit(f"audit_logs:ip10.0.0.{n}", limit=100, window_seconds=60)
        expiries = [store.pttl(key) for key in store.scan_iter(match="rl:audit_logs:*")]
        assert len(expiries) == 20 and max(expiries) <= 60_000, expiries
    finally:
        forget_logs()
        limiter._backend = saved
        policy_cache.forget()
