"""A client's window key in Redis that is not a sorted set (an operator's SET, a corrupted key) is started again:
the client is limited as before, and nobody else's requests depend on it."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache
from apps.ratelimits.throttling import limiter

pytestmark = pytest.mark.django_db


@pytest.fixture
def audit_fails_closed():
    RateLimitPolicy.objects.filter(scope="audit_logs").update(fail_open=False, requests=3)
    policy_cache._bump()
    limiter.breaker.success()
    yield
    limiter.breaker.success()


def test_a_window_key_of_another_type_is_started_again_and_opens_no_breaker(api, issue_token, audit_fails_closed):
    """The script's WRONGTYPE error was taken for Redis being away: every request of that client opened the
    process's shared breaker (the cache's L2, every other client's limit: 503s on a scope failing closed), and on
    a scope failing open the client was never limited again (the key had no expiry)."""
    token, other = issue_token("audit:read"), issue_token("audit:read")
    get = lambda bearer: api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {bearer}")  # noqa: E731
    assert get(token).status_code == 200
    client = redis.Redis.from_url(settings.REDIS_URL)
    (key,) = client.keys("rl:audit_logs:*")
    client.delete(key)
    client.set(key, "written by hand")

    responses = [get(token) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert limiter.breaker.state == "closed"
    assert get(other).status_code == 200
    assert client.type(key) == b"zset" and client.pttl(key) > 0
