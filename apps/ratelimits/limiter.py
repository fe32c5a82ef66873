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

# KEYS[1]: the log; KEYS[2]: its scope's keep floor (see RedisSlidingWindow.lengthen). ARGV: window ms, limit,
# burst per second (0: none), member.
# Returns {allowed, quota, remaining, reset_ms, retry_after_ms}: see Decision. The clock is Redis's, shared by
# every caller. A key that is not a log (written from outside: an operator's SET, a corrupted key) is started again:
# its WRONGTYPE error was taken for Redis being away, opening the process's shared breaker on every request.
# The log is kept for the window, or for the scope's keep floor where that is longer: a process that has not yet
# read a lengthened period (the policies' poll, about a second) must not give the hits it admits the old one.
SLIDING_WINDOW = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = math.max(window, tonumber(redis.call('GET', KEYS[2]) or 0) or 0)
-- Members stamped ahead of now (Redis's clock stepped back, or one written from outside) would be counted, and
-- make the wait, for as long as they are ahead: for ever, for a bad score. Stamped now instead: still counted
-- (a step back does not hand out a second window), but gone within the window.
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now + FUTURE_MS), '+inf')
for i = 1, #ahead do redis.call('ZADD', KEYS[1], now, ahead[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  local wait = math.min(tonumber(freeing[2]) + window - now, window)
  redis.call('PEXPIRE', KEYS[1], keep)  -- a period lengthened since the last admission: keep the log that long
  return {0, limit, 0, wait, wait}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
local quota, remaining = limit, limit - count - 1
if burst > 0 then
  local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - 999, '+inf', 'WITHSCORES', 'LIMIT', 0, burst)
  local in_second = #recent / 2
  if in_second >= burst then
    local wait = math.min(tonumber(recent[2]) + 1000 - now, 1000)
    return {0, burst, 0, wait, wait}
  end
  if burst - in_second - 1 < remaining then
    quota, remaining, reset = burst, burst - in_second - 1, 1000
    if in_second > 0 then reset = math.min(tonumber(recent[2]) + 1000 - now, 1000) end
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], keep)
if count == 0 and quota == limit then reset = window end
return {1, quota, remaining, math.min(reset, window), 0}
"""
# How far ahead of the store's clock a hit may be stamped and still be taken as it is: past this, a clock that
# stepped back or a bad member, stamped now instead (see the script).
FUTURE_TOLERANCE_MS = 1000
SLIDING_WINDOW = SLIDING_WINDOW.replace("FUTURE_MS", str(FUTURE_TOLERANCE_MS))

# KEYS: logs of one scope. ARGV: ms. Each log that would expire sooner is kept that long from now (a log without
# an expiry is not one of the limiter's and is left as it is).
EXTEND = """
local ms = tonumber(ARGV[1])
for i = 1, #KEYS do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl >= 0 and ttl < ms then redis.call('PEXPIRE', KEYS[i], ms) end
end
return #KEYS
"""
# How long a lengthened period's keep floor outlives the edit, at least: past the 5 minutes a process may keep the
# policies it read (selectors.policy_cache's TTL), every process limits by the new period.
KEEP_FLOOR_MIN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Decision:
    """One hit's answer. `limit`, `remaining` and `reset_seconds` describe the quota nearest to exhaustion, as
    the RateLimit headers do when a client has several: the window's, or the per-second burst's when it has
    fewer left (a 429 of the burst says 0 left of it, reset when Retry-After says)."""

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
        self.extend = client.register_script(EXTEND)

    def hit(self, key: str, *, limit: int, window_seconds: int, burst: int | None = None) -> Decision:
        """`key`: "<scope>:<client>"; the scope names the keep floor (`lengthen`)."""
        scope = key.split(":", 1)[0]
        try:
            allowed, quota, remaining, reset_ms, retry_ms = self.script(
                keys=[f"rl:{key}", f"rl-keep:{scope}"],
                args=[window_seconds * 1000, limit, burst or 0, os.urandom(8).hex()],
            )
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return Decision(bool(allowed), int(quota), int(remaining), int(reset_ms) / 1000, int(retry_ms) / 1000)

    def lengthen(self, scope: str, period_seconds: int) -> int:
        """After the scope's period was lengthened to `period_seconds`: its logs are kept that long. Each log
        expires a period after its last hit, so those written under the shorter one would expire with the hits
        they hold still inside the new window, and a client be let in again (4 in 1.2 s under "2 per 60 s").
        First the keep floor, for the logs the processes that have not yet read the edit write meanwhile (their
        poll: about a second); then every log the scope has now. The number of logs."""
        ms = period_seconds * 1000
        try:
            self.client.set(f"rl-keep:{scope}", ms, px=max(ms, KEEP_FLOOR_MIN_SECONDS * 1000))
            extended, batch = 0, []
            for key in self.client.scan_iter(match=f"rl:{scope}:*", count=1000):  # a slug: no glob characters
                batch.append(key)
                if len(batch) == 500:
                    extended += self.extend(keys=batch, args=[ms])
                    batch = []
            if batch:
                extended += self.extend(keys=batch, args=[ms])
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return extended

    def shorten(self, scope: str) -> None:
        """After the scope's period was shortened: a keep floor a lengthening left is dropped, or every log of the
        scope was kept for the longer period for up to that period (a day typed by mistake, corrected a minute
        later, kept each client's log a day). Each log's next hit sets its expiry by the period in force."""
        try:
            self.client.delete(f"rl-keep:{scope}")
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc


class DatabaseSlidingWindow:
    """The same rule in SQL, without Redis: SQLite (one writer at a time) or PostgreSQL (a lock per key).

    On PostgreSQL the clock is the database's, as the Redis script's is Redis's: processes whose clocks
    disagree would otherwise expire one another's hits early or late. SQLite is one file on one host, whose
    processes share its clock."""

    def hit(self, key: str, *, limit: int, window_seconds: int, burst: int | None = None) -> Decision:
        from apps.ratelimits.models import RateLimitHit

        window = window_seconds * 1000
        using = router.db_for_write(RateLimitHit)
        try:
            with transaction.atomic(using=using):
                now = self._locked_now(connections[using], key)
                RateLimitHit.objects.filter(key=key, at_ms__lte=now - window).delete()
                times = list(RateLimitHit.objects.filter(key=key).order_by("at_ms").values_list("at_ms", flat=True))
                # Hits stamped ahead of the clock (it stepped back, or another host's was ahead): now, as in Redis.
                # Clamped here, and written back only when there are any: an UPDATE on every hit was a write
                # (and on SQLite the one writer's turn) spent on nothing nearly always.
                if times and times[-1] > now + FUTURE_TOLERANCE_MS:
                    RateLimitHit.objects.filter(key=key, at_ms__gt=now + FUTURE_TOLERANCE_MS).update(at_ms=now)
                    times = sorted(now if at > now + FUTURE_TOLERANCE_MS else at for at in times)
                if len(times) >= limit:
                    wait = min(times[len(times) - limit] + window - now, window)
                    return Decision(False, limit, 0, wait / 1000, wait / 1000)
                reset = min(times[0] + window - now, window) if times else window
                quota, remaining = limit, limit - len(times) - 1
                recent = [at for at in times if at > now - 1000]
                if burst and len(recent) >= burst:
                    wait = min(recent[0] + 1000 - now, 1000)
                    return Decision(False, burst, 0, wait / 1000, wait / 1000)
                if burst and burst - len(recent) - 1 < remaining:
                    quota, remaining = burst, burst - len(recent) - 1
                    reset = min(recent[0] + 1000 - now, 1000) if recent else 1000
                RateLimitHit.objects.create(key=key, at_ms=now)
        except Exception as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return Decision(True, quota, remaining, reset / 1000, 0.0)

    @staticmethod
    def _locked_now(connection, key: str) -> int:
        """Milliseconds now, read once the key is this transaction's alone: a waiter must not use a stale clock."""
        if connection.vendor != "postgresql":
            return int(time.time() * 1000)
        # Count-then-insert is a race under READ COMMITTED: every concurrent hit counts the same rows and all
        # pass. One hit per key at a time; the lock ends with the transaction, and the count after it (a new
        # snapshot) sees the previous holder's row. clock_timestamp(), not now(): that is when the
        # transaction began, before the wait for the lock.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint "
                "FROM (SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))) AS locked",
                [f"rl:{key}"],
            )
            return cursor.fetchone()[0]
