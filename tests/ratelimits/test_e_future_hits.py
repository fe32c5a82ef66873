"""Hits stamped ahead of the store's clock (its clock stepped back, a member written from outside) neither block
a client for ever nor make a failure-budget marker outlive the window: Redis and the embedded database limiter."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings

from apps.ratelimits.limiter import FUTURE_TOLERANCE_MS, DatabaseSlidingWindow, RedisSlidingWindow

pytestmark = pytest.mark.django_db(transaction=True)

DAY_MS = 24 * 3600 * 1000


def _redis_now_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_redis_hits_stamped_ahead_are_counted_for_one_window_not_for_ever():
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"future:{uuid.uuid4().hex}"
    ahead = _redis_now_ms(client) + DAY_MS
    client.zadd(f"rl:{key}", {"skewed-1": ahead, "skewed-2": ahead + 1, "bad": float("inf")})
    try:
        decision = RedisSlidingWindow(client).hit(key, limit=3, window_seconds=60)
        assert not decision.allowed  # still counted: a clock step back does not hand out a second window
        assert 0 < decision.retry_after_seconds <= 60
        newest = client.zrange(f"rl:{key}", -1, -1, withscores=True)[0][1]
        assert newest <= _redis_now_ms(client) + FUTURE_TOLERANCE_MS
        assert client.pttl(f"rl:{key}") <= 60_000
    finally:
        client.delete(f"rl:{key}")


def test_redis_reset_of_an_admitted_hit_is_never_past_the_window():
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"future-admit:{uuid.uuid4().hex}"
    client.zadd(f"rl:{key}", {"skewed": _redis_now_ms(client) + DAY_MS})
    try:
        decision = RedisSlidingWindow(client).hit(key, limit=5, window_seconds=60)
        assert decision.allowed
        assert decision.remaining == 3
        assert 0 < decision.reset_seconds <= 60
    finally:
        client.delete(f"rl:{key}")


def test_a_failure_budget_marker_lasts_no_longer_than_the_window(settings):
    from django_redis import get_redis_connection

    from apps.accounts.failure_budget import _store

    settings.API_TOKEN_FAILURE_BUDGET = {"failures": 2, "window_seconds": 60}
    client = get_redis_connection("default")
    key = f"e-future-{uuid.uuid4().hex}"
    client.zadd(f"rl:auth-failures:{key}", {"skewed": _redis_now_ms(client) + DAY_MS})
    try:
        _store.count_failure(key)  # spends the budget, with the skewed hit
        left = client.pttl(f"auth-failures-refused:{key}")
        assert 0 < left <= 60_000
    finally:
        client.delete(f"rl:auth-failures:{key}", f"auth-failures-refused:{key}")


def test_the_database_limiter_ignores_hits_stamped_ahead():
    from apps.ratelimits.models import RateLimitHit

    key = f"db-future:{uuid.uuid4().hex}"
    window = DatabaseSlidingWindow()
    first = window.hit(key, limit=3, window_seconds=60)
    assert first.allowed
    now = RateLimitHit.objects.get(key=key).at_ms
    RateLimitHit.objects.bulk_create([RateLimitHit(key=key, at_ms=now + DAY_MS + n) for n in range(2)])
    refused = window.hit(key, limit=3, window_seconds=60)
    assert not refused.allowed
    assert 0 < refused.retry_after_seconds <= 60
    newest = max(RateLimitHit.objects.filter(key=key).values_list("at_ms", flat=True))
    assert newest < now + DAY_MS  # stamped at the clock's now: they leave with the window
