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


def _tighten_and_retry(window, key: str) -> None:
    """Eight hits admitted under a limit of 8 (four, then four more 0.5 s later), then the limit cut to
    4: only the fifth oldest hit expiring brings the count below 4, not the oldest."""
    for _ in range(4):
        assert window.hit(key, limit=8, window_seconds=1).allowed
    time.sleep(0.5)
    for _ in range(4):
        assert window.hit(key, limit=8, window_seconds=1).allowed

    refused = window.hit(key, limit=4, window_seconds=1)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_seconds > 0.8  # the oldest expires in under 0.5 s: that wait would be refused
    assert refused.reset_seconds == refused.retry_after_seconds

    time.sleep(refused.retry_after_seconds - 0.1)
    assert not window.hit(key, limit=4, window_seconds=1).allowed  # not a needlessly long wait: just short of it
    time.sleep(0.1)
    assert window.hit(key, limit=4, window_seconds=1).allowed


def test_redis_retry_after_holds_after_the_limit_is_tightened_mid_window():
    _tighten_and_retry(RedisSlidingWindow(redis.Redis.from_url(settings.REDIS_URL)), f"tighten:{uuid.uuid4().hex}")


@pytest.mark.django_db
def test_database_retry_after_holds_after_the_limit_is_tightened_mid_window():
    _tighten_and_retry(DatabaseSlidingWindow(), f"db-tighten:{uuid.uuid4().hex}")


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
