"""An exact sliding-window limiter: one Lua script in Redis (no read-modify-write from Python).

The window log holds one member per admitted request, so "100 per 60 s" means never a 101st inside
any 60 s, however many clients race. Without Redis the same rule runs in the database: SQLite's
serialized writers keep it exact, and on PostgreSQL a transaction-scoped advisory lock per key does.

Refused for the count, a caller waits until enough members expire that the count drops below the
limit: the oldest one normally, but after the limit is tightened mid-window (an adaptive step, an
admin edit) the log can hold more members than the new limit, and only the (count - limit + 1)-th
oldest expiring frees a slot.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from django.db import connections, router, transaction

# KEYS[1]: the log. ARGV: window ms, limit, burst per second (0: none), member.
# Returns {allowed, remaining, reset_ms, retry_after_ms}; the clock is Redis's, shared by every caller.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  local wait = tonumber(freeing[2]) + window - now
  return {0, 0, wait, wait}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
if burst > 0 then
  local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - 999, '+inf', 'WITHSCORES', 'LIMIT', 0, burst)
  if #recent / 2 >= burst then
    local wait = tonumber(recent[2]) + 1000 - now
    return {0, limit - count, reset, wait}
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if count == 0 then reset = window end
return {1, limit - count - 1, reset, 0}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float


class LimiterUnavailable(Exception):
    """The limiter's store could not be reached; the policy says whether to fail open or closed."""


class RedisSlidingWindow:
    def __init__(self, client):
        self.client = client
        self.script = client.register_script(SLIDING_WINDOW)

    def hit(self, key: str, *, limit: int, window_seconds: int, burst: int | None = None) -> Decision:
        try:
            allowed, remaining, reset_ms, retry_ms = self.script(
                keys=[f"rl:{key}"], args=[window_seconds * 1000, limit, burst or 0, os.urandom(8).hex()]
            )
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return Decision(bool(allowed), limit, int(remaining), int(reset_ms) / 1000, int(retry_ms) / 1000)


class DatabaseSlidingWindow:
    """The same rule in SQL, without Redis: SQLite (one writer at a time) or PostgreSQL (a lock per key)."""

    def hit(self, key: str, *, limit: int, window_seconds: int, burst: int | None = None) -> Decision:
        from apps.ratelimits.models import RateLimitHit

        window = window_seconds * 1000
        using = router.db_for_write(RateLimitHit)
        try:
            with transaction.atomic(using=using):
                connection = connections[using]
                if connection.vendor == "postgresql":
                    # Count-then-insert is a race under READ COMMITTED: every concurrent hit counts the
                    # same rows and all pass. One hit per key at a time; the lock ends with the
                    # transaction, and the count below (a new snapshot) sees the previous holder's row.
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"rl:{key}"])
                now = int(time.time() * 1000)  # read once the lock is held: a waiter must not use a stale clock
                RateLimitHit.objects.filter(key=key, at_ms__lte=now - window).delete()
                times = list(RateLimitHit.objects.filter(key=key).order_by("at_ms").values_list("at_ms", flat=True))
                if len(times) >= limit:
                    wait = times[len(times) - limit] + window - now
                    return Decision(False, limit, 0, wait / 1000, wait / 1000)
                reset = (times[0] + window - now) if times else window
                recent = [at for at in times if at > now - 1000]
                if burst and len(recent) >= burst:
                    return Decision(False, limit, limit - len(times), reset / 1000, (recent[0] + 1000 - now) / 1000)
                RateLimitHit.objects.create(key=key, at_ms=now)
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return Decision(True, limit, limit - len(times) - 1, reset / 1000, 0.0)
