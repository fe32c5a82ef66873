"""The limiter backends themselves: the database one exact on PostgreSQL under concurrency, and a
Retry-After that holds after the limit is tightened mid-window (Redis and database alike)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import F

from apps.ratelimits.limiter import DatabaseSlidingWindow, RedisSlidingWindow
from apps.ratelimits.models import RateLimitHit


@pytest.mark.django_db(transaction=True)  # each thread commits on its own connection, as requests do
def test_the_database_limiter_admits_exactly_the_limit_under_concurrent_hits():
    assert connection.vendor == "postgresql"  # SQLite serializes writers; the race is PostgreSQL's
    window = DatabaseSlidingWindow()
    key = f"db-exact:{uuid.uuid4().hex}"
    allowed = []
    # Fewer threads than the pool holds (scripts/test.sh: 10), each connected before the barrier, so
    # every hit of the first wave really runs at once.
    start = threading.Barrier(8, timeout=30)

    def client():
        from django.db import connection as own

        try:
            own.ensure_connection()
            start.wait()
            for _ in range(6):
                allowed.append(window.hit(key, limit=5, window_seconds=60).allowed)
        finally:
            own.close()  # back to the pool: the test database cannot be dropped while it is open

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 48
    assert sum(allowed) == 5
    assert RateLimitHit.objects.filter(key=key).count() == 5


def _age_redis_log(client, key: str, ms: int) -> None:
    """Move every hit in the Redis log `ms` into the past: what waiting that long does to it, without the wait."""
    log = f"rl:{key}"  # RedisSlidingWindow's key
    aged = {member: score - ms for member, score in client.zrange(log, 0, -1, withscores=True)}
    if aged:
        client.zadd(log, aged)


def _age_database_log(key: str, ms: int) -> None:
    """The same for the database limiter's rows."""
    RateLimitHit.objects.filter(key=key).update(at_ms=F("at_ms") - ms)


def _tighten_and_retry(window, key: str, age) -> None:
    """Eight hits admitted under a limit of 8 in a 60 s window (four aged 40 s, four aged 10 s), then the limit
    cut to 4: only the fifth oldest hit expiring (in at most 50 s) brings the count below 4, not the oldest
    (in at most 20 s), and not the whole window (60 s).

    The hits are aged by moving their stamps back (`age`), not by sleeping: with sleeps of half a 1 s window
    and a 0.1 s margin either side of Retry-After, a loaded machine's late hit landed on the wrong side of it.
    A late step here only makes every hit older, which the bounds below allow for (10 s of it)."""
    for _ in range(4):
        assert window.hit(key, limit=8, window_seconds=60).allowed
    age(30_000)
    for _ in range(4):
        assert window.hit(key, limit=8, window_seconds=60).allowed
    age(10_000)

    refused = window.hit(key, limit=4, window_seconds=60)
    assert not refused.allowed and refused.remaining == 0
    assert 40 < refused.retry_after_seconds <= 50  # the fifth oldest's expiry: the oldest's wait would be refused
    assert refused.reset_seconds == refused.retry_after_seconds

    # A client that waits 20 s less than it was told is still refused (told to wait the rest, no longer)...
    age(round(refused.retry_after_seconds * 1000) - 20_000)
    early = window.hit(key, limit=4, window_seconds=60)
    assert not early.allowed and 0 < early.retry_after_seconds <= 20
    # ...and one that waits what it was told is admitted (more time passing since only ages the log further).
    age(round(early.retry_after_seconds * 1000))
    assert window.hit(key, limit=4, window_seconds=60).allowed


def test_redis_retry_after_holds_after_the_limit_is_tightened_mid_window():
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"tighten:{uuid.uuid4().hex}"
    _tighten_and_retry(RedisSlidingWindow(client), key, lambda ms: _age_redis_log(client, key, ms))


@pytest.mark.django_db
def test_database_retry_after_holds_after_the_limit_is_tightened_mid_window():
    key = f"db-tighten:{uuid.uuid4().hex}"
    _tighten_and_retry(DatabaseSlidingWindow(), key, lambda ms: _age_database_log(key, ms))


def test_a_lengthened_period_keeps_refusing_until_retry_after_says():
    """Two hits under 2 per second, then the period edited to a minute: the refusal's Retry-After is about a
    minute, and the log must outlive the one-second expiry it was given when the hits were admitted."""
    window = RedisSlidingWindow(redis.Redis.from_url(settings.REDIS_URL))
    key = f"lengthened:{uuid.uuid4().hex}"
    assert all(window.hit(key, limit=2, window_seconds=1).allowed for _ in range(2))
    refused = window.hit(key, limit=2, window_seconds=60)
    assert not refused.allowed and refused.retry_after_seconds > 58
    time.sleep(1.1)  # past the expiry the admitted hits set
    assert not window.hit(key, limit=2, window_seconds=60).allowed
