"""The multi-level cache: L1 process memory -> L2 Redis -> L3 database -> the loader.

How a read stays correct:
- Keys are HMACs of (namespace, the policy's generation, key parts); no identifier reaches a store.
- An entry that depends on data that changes (one patient's vitals, say) names a *scope*. A write
  bumps the scope's generation inside its own transaction (`invalidate_scopes`), publishes it to Redis
  on commit, and every tier compares an entry's generation with the current one. A reader that
  started before a write stores its value under the old generation, so it can never be served after
  the write: the stale-read race is closed by construction, not by timing.
- Other processes hear of a committed write at once on a Redis channel and drop just the affected L1
  entries; one indexed query a second (the generations changed since the last poll) is the backstop
  that needs no Redis, and brings policy edits.
- A miss is loaded once per key: threads of a process wait for the one loading, other processes wait
  on a Redis lock for the value to appear, or are served the stale value inside the SWR window.
- Redis failures open a circuit breaker: reads go on through L1, L3 and the loader, no request fails.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from apps.caching.bounds import MAX_SINGLE_FLIGHT_WAIT_SECONDS
from apps.caching.defaults import PHI_NAMESPACES, ttl_check
from apps.caching.layers import CodecError, Entry, KeyHasher, MemoryTier, ValueCodec, json_memory
from apps.core.breaker import CircuitBreaker, shared_cache_breaker
from controlplane.db_router import reads_from_primary

logger = logging.getLogger(__name__)

POLICY_SCOPE = "policies"  # a CacheScopeGeneration row bumped on every policy edit
# A bump is stamped before its commit, so each poll looks back this far past the previous one. The
# stamps and the polls' starts are the database's clock (on PostgreSQL: hosts' clocks may disagree),
# and a transaction that commits later than this after its bump stamps its rows again on commit.
POLL_MARGIN = timedelta(seconds=5)
# Committed invalidations ("<scope key> <generation>"), for the processes' L1 tiers.
INVALIDATIONS_CHANNEL = "cpc:invalidations"  # and the Redis db's number (invalidations_channel): one channel a db
# Scopes bumped by one statement where the database takes them as rows of VALUES (SQLite: 3 parameters each).
SCOPES_PER_STATEMENT = 300

# Set the generation only upward, so replays and out-of-order publishes are harmless. A value that is not a
# number, or a key of another type (written from outside), is taken for none: it failed the script, every poll.
# Keys are read with pcall and MGET, which answer a key of another type rather than fail (WRONGTYPE).
_SET_IF_GREATER = """
local raw = redis.pcall('GET', KEYS[1])
local current = 0
if type(raw) == 'string' and string.match(raw, '^%-?%d+$') then current = tonumber(raw) end
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return raw
"""
# Set a generation found ahead of the database back to the database's, unless it changed since it was read.
_SET_BACK_IF_UNCHANGED = """
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# Give a scope its generation unless Redis has one (a number): the key's value after.
_SET_UNLESS_A_NUMBER = """
local raw = redis.pcall('GET', KEYS[1])
if type(raw) == 'string' and string.match(raw, '^%-?%d+$') then return raw end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
_A_NUMBER = re.compile(rb"-?[0-9]+")

# A database restored from a backup under a Redis (and processes) that kept what they had: its scope generations
# went back while Redis's did not, so L2 entries of writes the database no longer has stayed valid (and a write
# after the restore, bumping a generation back to one Redis already held, made them valid again), and no poll
# found the restored rows (stamped before the backup), so L1 entries and policies stayed as they were. Each poll
# draws from a sequence of the database (migration caching 0006), which pg_dump and a file-system snapshot take
# back with it; Redis keeps the highest number drawn. A number drawn at or below the one Redis held before the
# draw means the sequence went back: a restore. So does a number at or below the last one this process drew: Redis
# may have lost the mark (FLUSHDB, a restart without persistence) as well. The process that sees it first starts
# a new restore epoch, part of every L2 key (an empty key space, as a new Redis server's run id gives one), and
# every process that sees the epoch change drops its L1, its known generations and pending publishes, its local
# caches (apps/core/local_cache.py, which also read the epoch, for processes that make no cached read), and
# reloads its policies. The sequence must hand out numbers in order (CACHE 1: migration caching 0006, read by every
# poll's own query). Every write that bumps a generation or a local cache's version draws once in its transaction
# (riding invalidate_scopes' upsert; VersionedLocalCache.invalidate, called in the edit's transaction, not in its
# on_commit) and raises the mark once it commits (riding its publish): a restore takes that draw back too, so it is
# seen though no poll drew between the backup and the restore. A draw still unsent when the process learns of a
# new epoch is forgotten (raised into it, the next poll took it for a second restore), so a process looks at the
# epoch before it raises one if it has not for a poll's time. A restore seen while Redis
# does not answer (the mark unread, or its compare unanswered: a draw at or below this process's last) drops the
# caches at once and reads no L2 (keyed by the epoch of before) until its epoch starts, when Redis answers.
# An epoch older than the moment a process found the key missing was written back after a flush: adopted.
# During a rolling upgrade from a release without the epoch, an old process's write is
# published under the key space without it: new processes take it from their next poll (about a second).
RESTORE_SEQUENCE = "caching_restore_watermark"
# A draw from it, NULL where the sequence is missing (before its migration) or the role may not use it: a role
# granted the tables alone (GRANT ... ON ALL TABLES covers no sequence, and the tables' identity columns need
# none) failed every poll and every write that bumps a generation on "permission denied for sequence". USAGE or
# UPDATE, as nextval asks (USAGE alone turned detection off for a role granted UPDATE, which nextval accepts).
_DRAW = (
    f"CASE WHEN has_sequence_privilege(to_regclass('{RESTORE_SEQUENCE}'), 'USAGE, UPDATE') "
    f"THEN nextval(to_regclass('{RESTORE_SEQUENCE}')) END"
)
# Called in every process that sees a new restore epoch (`on_restore`): what other modules keep of the database
# (apps/core/local_cache.py's caches), dropped without this module importing them (they import it).
_restore_hooks: list[Callable[[], None]] = []
RESTORE_MARK_KEY = "cpc:restore-mark"  # the highest number drawn from RESTORE_SEQUENCE
# Redis's time in microseconds when the last restore was seen: never one used before, even when the same backup is
# restored twice (the number drawn then is the same) or the key was lost.
RESTORE_EPOCH_KEY = "cpc:restore-epoch"
# A process that read the epoch this recently, and finds the key gone, takes it for lost (not a restore): it writes
# it back and keeps its caches. A restore seen by the fleet in between is seen again by its own draw (it goes back).
KEY_LOST_TRUST_SECONDS = 10.0
# ARGV[1]: the mark read before the draw ('' when none), ARGV[2]: the number drawn, ARGV[3]: the last number this
# process drew ('' when none). The epoch it starts when this draw shows a restore (0 when none), unless the mark
# changed since it was read: then another process saw it first, or draws made before the restore landed meanwhile
# (the next poll compares again). The epoch is answered, not read back by another call: that call, unanswered
# under load, left the process that saw the restore serving what it took back until Redis answered again.
_NOTE_RESTORE_MARK = """
local raw = redis.pcall('GET', KEYS[1])
local mark = nil
if type(raw) == 'string' and string.match(raw, '^%d+$') then mark = tonumber(raw) end
local drawn = tonumber(ARGV[2])
local back = (ARGV[1] ~= '' and drawn <= tonumber(ARGV[1])) or (ARGV[3] ~= '' and drawn <= tonumber(ARGV[3]))
if back and (raw or '') == ARGV[1] then
  local now = redis.call('TIME')
  local epoch = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], epoch)
  return epoch
end
if mark == nil or drawn > mark then redis.call('SET', KEYS[1], ARGV[2]) end
return 0
"""
# Raise the mark (KEYS[1]) to ARGV[1], a number a write drew in its transaction: a restore takes that draw back
# too, so the next poll's draw is at or below the mark even when no poll drew between the backup and the restore.
# Only while the restore epoch (KEYS[2]) is still ARGV[2], the one the writer knows ('' when none): a draw of before
# an epoch another process started since, raised into it, took the mark above the restored sequence, and the next
# poll started a second, false epoch (every cache dropped again). 1 when the epoch differs (nothing raised).
RAISE_RESTORE_MARK = """
local epoch = redis.pcall('GET', KEYS[2])
if type(epoch) ~= 'string' or not string.match(epoch, '^%d+$') then epoch = '' end
if epoch ~= ARGV[2] then return 1 end
local raw = redis.pcall('GET', KEYS[1])
if type(raw) ~= 'string' or not string.match(raw, '^%d+$') or tonumber(ARGV[1]) > tonumber(raw) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""
# A generation key lives this long from its last write (one per patient scope read or written would otherwise
# stay in Redis for ever): an expired one is UNSET, which is safe, and set again from the database.
GENERATION_KEY_MS = 2 * 24 * 3600 * 1000  # models.SCOPE_GENERATION_IDLE_SECONDS: twice what any entry lives

# A scope with no generation key in Redis: never set since the server started, or evicted (under an
# allkeys-* policy) or lost. Not "generation 0": an entry stored before the scope's first write would match
# that again once its key is evicted, and be served after the write. No L2 entry of the scope is served
# until a load sets the key again from the database's generation.
UNSET = -1

# Take the single-flight lock (for ARGV[2] ms, this process's lease): free, or left behind with no expiry (a
# crashed holder's key written without PX, a SET from outside) or with more of it left than any process's lease
# can be (ARGV[3] ms, LOCK_TAKEOVER_ABOVE_MS): such a lock is never let go, and every reader of the key would
# wait out its whole wait for ever. Not "more than this process's lease": processes with another
# CACHE_SINGLE_FLIGHT_WAIT_SECONDS (a rolling deploy) took each other's live locks. Taken over in the same step
# it is looked at, so two readers never both take it. 1 when taken, 0 when another holds it within its lease.
_TAKE_LOCK = """
local left = redis.call('PTTL', KEYS[1])
if left == -2 or left == -1 or left > tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# The longest lease any process may give its lock (loader_lifetime at the bound settings.py applies to
# CACHE_SINGLE_FLIGHT_WAIT_SECONDS, apps/caching/bounds.py), and above twice that a lock's TTL is no lease
# anyone gave: taken over.
MAX_LOCK_LEASE_MS = int(max(5.0, MAX_SINGLE_FLIGHT_WAIT_SECONDS * 5) * 1000)
LOCK_TAKEOVER_ABOVE_MS = 2 * MAX_LOCK_LEASE_MS

# Delete the lock only if it still holds our token (it may have expired and been taken by another).
_RELEASE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Policy:
    namespace: str
    enabled: bool = True
    l1: bool = True
    l2: bool = True
    l3: bool = True
    ttl: int = 600
    swr: int = 60
    l1_max_entries: int = 10_000
    encrypt: bool = True
    generation: int = 1


# Per request (each thread and each task has its own context): None before any cached read, then
# whether every cached read since `cache_reads_reset` was served from a tier rather than loaded.
_served_from_cache: ContextVar[bool | None] = ContextVar("served_from_cache", default=None)


def cache_reads_reset() -> None:
    """Start a request's account of its cached reads (a thread serves many requests, one at a time)."""
    _served_from_cache.set(None)


def served_from_cache() -> bool:
    """Whether this request made cached reads and every one was served from the cache, none loaded."""
    return bool(_served_from_cache.get())


def _note_read(*, loaded: bool) -> None:
    if loaded:
        _served_from_cache.set(False)
    elif _served_from_cache.get() is None:
        _served_from_cache.set(True)


COUNTERS = ("requests", "hits", "misses", "stale_serves", "loads", "load_seconds", "evictions", "errors", "bytes")


class CacheStack:
    """One per process (see `default_stack`); tests and benches build their own with other clients."""

    def __init__(
        self,
        *,
        redis_client_factory: Callable[[], Any] | None,
        key_secret: str,
        encryption_keys: list[str],
        l1_max_bytes: int = 64 * 1024 * 1024,
        poll_interval: float = 1.0,
        flush_interval: float = 5.0,
        single_flight_wait: float = 2.0,
        breaker_seconds: float = 3.0,
        breaker: CircuitBreaker | None = None,
        database: str = "default",
        clock: Callable[[], float] = time.time,
        subscribe: bool = True,
        listener_ping_seconds: float = 10.0,
        background: bool = False,
        exit_timeout: float = 3.0,
    ):
        self._redis_factory = redis_client_factory
        self._redis = None
        self.hasher = KeyHasher(key_secret)
        self.codec = ValueCodec(encryption_keys)
        self.l1 = MemoryTier(l1_max_bytes)
        # Shared with whatever else calls the same Redis (see `from_settings`), else the stack's own.
        self.breaker = breaker or CircuitBreaker(self._probe_l2, name="cache L2 (Redis)", open_seconds=breaker_seconds)
        self.poll_interval = poll_interval
        self.flush_interval = flush_interval
        self.single_flight_wait = single_flight_wait
        self.loader_lifetime = max(5.0, single_flight_wait * 5)  # past this, a load is taken for dead
        # A lease past the ceiling (a stack built with a wait above the settings' bound) is still its own.
        self._takeover_above_ms = max(LOCK_TAKEOVER_ABOVE_MS, 2 * int(self.loader_lifetime * 1000))
        self.database = database
        self.clock = clock  # epoch seconds; a bench replays hours of traffic on a simulated clock
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._policies: dict[str, Policy] = {}
        self._policy_generation: int | None = None
        self._polled_at = 0.0
        self._poll_since = timezone.now() - POLL_MARGIN
        self._flushed_at = time.monotonic()
        self._known_generations: dict[str, tuple[int, float]] = {}
        self._pending_publishes: dict[str, int] = {}
        self._publish_lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self._flights: dict[str, threading.Event] = {}
        self._flights_lock = threading.Lock()
        self._async_flights: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future] = {}
        self._set_if_greater = None
        self._set_unless_a_number = None
        self._set_back_if_unchanged = None
        self._release_lock = None
        self._take_lock = None
        self._bad_generation_keys: set[str] = set()  # the scopes whose key was not a number: logged once each
        # Single-flight locks whose release did not reach Redis (name -> token, until when it matters): let go of
        # on the next tick that reaches it, so other processes' loaders do not wait out the lock's lifetime.
        self._pending_releases: dict[str, tuple[str, float]] = {}
        self._l2_epoch: str | None = None  # the Redis server's run id (and restore epoch), part of every L2 key
        self._restore_epoch: str | None = None  # RESTORE_EPOCH_KEY as last read ("" when none)
        # Restore epochs this process has seen (`_forget_before_restore`): a value read while it was another number
        # is of before a restore, and is cached in no tier (see `_store`).
        self._restores = 0
        self._last_drawn: int | None = None  # the last number this process drew (None: none since the last epoch)
        self._last_probe_ok = 0.0  # time.monotonic() of this process's last probe that read the restore epoch
        self._sequence_ok = True  # RESTORE_SEQUENCE's CACHE is 1, read by every poll (a later ALTER is seen)
        self._sequence_usable = True  # this process's role may draw from RESTORE_SEQUENCE (a later GRANT is seen)
        self._pending_drawn = 0  # the highest number a committed write drew, not yet raised into the mark
        self._restore_pending = False  # a restore seen while Redis did not answer: caches dropped, epoch not started
        self._epoch_missing_at: int | None = None  # Redis's time (microseconds) when the epoch key was found missing
        self._raise_mark = None
        self._tick_mark: str | None = None  # RESTORE_MARK_KEY as the running tick read it (see tick)
        self._note_restore_mark = None
        self._subscribe = subscribe and redis_client_factory is not None
        # The channel is pinged this often, and taken for dead after three pings without an answer.
        self.listener_ping_seconds = listener_ping_seconds
        self._listener_pid: int | None = None
        # A thread of this process flushes the counters once reads stop (see `_flush_idle`); off for the stacks
        # tests and benches build, which flush explicitly. `exit_timeout`: the most an exit waits for the last flush.
        self.background = background
        self.exit_timeout = exit_timeout
        self._flusher_pid: int | None = None

    @classmethod
    def from_settings(cls, redis_url: str = "", **overrides) -> CacheStack:
        """A stack on the project's secrets and limits. L2 is `redis_url` when given, else the project's
        Redis connection (none when REDIS_URL is unset)."""
        if redis_url:
            import redis

            def factory():
                return redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

        else:
            factory = _settings_redis if settings.REDIS_URL else None
            # The Django cache's own Redis: once the local caches or the limiter saw it hang, the stack
            # does not wait on it too, nor they on the stack's discovery.
            overrides.setdefault("breaker", shared_cache_breaker)
        options = {
            "key_secret": settings.CACHE_KEY_SECRET,
            "encryption_keys": settings.CACHE_ENCRYPTION_KEYS,
            "l1_max_bytes": settings.CACHE_L1_MAX_BYTES,
            "single_flight_wait": settings.CACHE_SINGLE_FLIGHT_WAIT_SECONDS,
            "breaker_seconds": settings.CACHE_REDIS_BREAKER_SECONDS,
        }
        return cls(redis_client_factory=factory, **(options | overrides))

    # --- policies and the once-a-second poll ------------------------------------------------------
    def policy(self, namespace: str, *, arrived: float | None = None) -> Policy:
        """`arrived`: when the read began (time.monotonic()), given by reads that pass it on to `lookup`."""
        # Asked here first: every read wants its policy, a poll is rare.
        if self._poll_due(time.monotonic() if arrived is None else arrived):
            self.tick()
            if self._subscribe and self._listener_pid != os.getpid():
                self._start_listener()
            if self.background and self._flusher_pid != os.getpid():
                self._start_flusher()
        policy = self._policies.get(namespace)
        if policy is None:
            from apps.caching.services import cache_policy_ensure

            policy = self._policy_from_row(cache_policy_ensure(namespace=namespace))
            self._policies[namespace] = policy
        return policy

    def tick(self, *, force: bool = False) -> None:
        """Poll generations changed since the last poll (one indexed query), at most once per interval."""
        if not force and not self._poll_due(time.monotonic()):
            return
        # Another thread polling: a read never waits for it (a poll slowed by a busy database pool held every
        # read, L1 hits included, for up to a second). L1 is as of the last poll's start, which `lookup` checks.
        if not self._tick_lock.acquire(blocking=force):
            return
        started = time.monotonic()
        if not force and not self._poll_due(started):
            self._tick_lock.release()  # another thread polled in between
            return
        try:
            # The mark read before this poll's draw: kept apart from the probes of other threads (a request's
            # call that found the epoch cleared), whose mark can hold later draws. Written only here, under the lock.
            self._tick_mark = self._learn_l2_epoch()
            self._poll()
            self._polled_at = started  # L1 is current as of the writes the query saw
            self._retry_publishes()
            self._retry_releases()
            # With a flusher thread (`background`), the counters' tens of statements stay off the read path.
            if force or (not self.background and started - self._flushed_at >= self.flush_interval):
                self.flush_stats()
        finally:
            self._tick_lock.release()

    def _poll_due(self, now: float) -> bool:
        return now - self._polled_at >= self.poll_interval or self._policy_generation is None

    def _poll(self) -> None:
        from apps.caching.models import CacheScopeGeneration

        mark = self._tick_mark  # RESTORE_MARK_KEY as this tick read it ('' when absent, None when not read)

        since = self._poll_since - POLL_MARGIN
        try:
            if connections[self.database].vendor == "postgresql":
                started, drawn, seqcache, changed = self._changed_since_by_database_clock(since)
                self._note_sequence_usable(seqcache is None or drawn is not None)
                if drawn is not None and self._sequence_in_order(seqcache):
                    self._check_restored(drawn, mark)
            else:  # embedded: one host, one clock
                started = timezone.now()
                changed = list(
                    CacheScopeGeneration.objects.using(self.database)
                    .filter(updated_at__gte=since)
                    .values_list("scope", "generation")
                )
        except Exception:
            logger.warning("cache generation poll failed; dropping L1", exc_info=True)
            self.l1.clear()
            return
        self._poll_since = started
        for scope, generation in changed:
            if scope == POLICY_SCOPE:
                if generation != self._policy_generation:
                    self._reload_policies_safely(generation)
                continue
            self._heard_of_write(scope, generation)
            # Every process re-publishes what it sees: Redis catches up within a poll even when the
            # writer's own publish failed, or its process ended before it could retry.
            self._queue_publish(scope, generation)
        if self._policy_generation is None:
            self._reload_policies_safely(0)
        for scope, (_, until) in list(self._known_generations.items()):
            if until < time.monotonic():
                self._known_generations.pop(scope, None)

    def _changed_since_by_database_clock(self, since) -> tuple[Any, int | None, int | None, list[tuple[str, int]]]:
        """The database's time at this poll, a number drawn from RESTORE_SEQUENCE (None before its migration), the
        sequence's CACHE and the generations stamped since `since`, in one round trip."""
        from apps.caching.models import CacheScopeGeneration

        table = CacheScopeGeneration._meta.db_table
        with connections[self.database].cursor() as cursor:
            cursor.execute(
                f"SELECT c.now, c.drawn, c.seqcache, g.scope, g.generation FROM (SELECT statement_timestamp() AS now, "  # noqa: S608
                f"{_DRAW} AS drawn, (SELECT seqcache FROM pg_sequence WHERE "
                f"seqrelid = to_regclass('{RESTORE_SEQUENCE}')) AS seqcache) c "
                f"LEFT JOIN {table} g ON g.updated_at >= %s",
                [since],
            )
            rows = cursor.fetchall()
        changed = [(scope, generation) for _, _, _, scope, generation in rows if scope is not None]
        return rows[0][0], rows[0][1], rows[0][2], changed

    def _note_sequence_usable(self, usable: bool) -> None:
        """Report when this process's database role turns unable to draw from RESTORE_SEQUENCE, or able again."""
        if usable == self._sequence_usable:
            return
        if usable:
            logger.warning("the database role may use sequence %s again: restores are detected", RESTORE_SEQUENCE)
        else:
            logger.error(
                "the database role may not use sequence %s: database restores are not detected by the caches until "
                "GRANT USAGE ON SEQUENCE %s TO the role", RESTORE_SEQUENCE, RESTORE_SEQUENCE,
            )  # fmt: skip
        self._sequence_usable = usable

    def _sequence_in_order(self, seqcache: int | None) -> bool:
        """Whether RESTORE_SEQUENCE hands out numbers in order (its CACHE, read by every poll's own query): with a
        CACHE above 1 each session draws from its own block, numbers interleave out of order and every poll would
        look like a restore. Reported when it turns so; an ALTER ... CACHE 1 later turns detection back on."""
        ok = seqcache is None or seqcache <= 1
        if ok != self._sequence_ok:
            if ok:
                logger.warning("sequence %s has CACHE 1 again: database restores are detected", RESTORE_SEQUENCE)
                self._last_drawn = None  # numbers drawn out of order meanwhile: not compared
            else:
                logger.error(
                    "sequence %s has CACHE %s: database restores are not detected by the caches until it is "
                    "ALTER SEQUENCE %s CACHE 1", RESTORE_SEQUENCE, seqcache, RESTORE_SEQUENCE,
                )  # fmt: skip
            self._sequence_ok = ok
        return ok

    def _check_restored(self, drawn: int, mark: str | None) -> None:
        """Compare the number this poll drew with the mark read before the draw, and with the last number this
        process drew (see RESTORE_SEQUENCE)."""
        last = self._last_drawn
        if mark is None:  # the mark was not read (Redis away)
            self._fall_back_on_own_draw(drawn, last)
            return
        if self._restore_pending:
            last = drawn  # compared with itself: the restore seen during the outage starts its epoch now

        def note(client):
            if self._note_restore_mark is None:
                self._note_restore_mark = client.register_script(_NOTE_RESTORE_MARK)
            args = [mark, drawn, "" if last is None else last]
            return self._note_restore_mark(keys=[RESTORE_MARK_KEY, RESTORE_EPOCH_KEY], args=args)

        ok, restored = self._redis_call("", note, restore_check=True)
        if not ok:  # the mark was read, the compare got no answer (a timeout, the breaker opened meanwhile)
            self._fall_back_on_own_draw(drawn, self._last_drawn)
        elif restored:
            # Dropped here, on the compare's own answer: a probe that reads the epoch back may get none (its L1
            # and policies were kept, and served, until Redis answered again and a poll came).
            self._forget_before_restore(
                why="the database went back (restored from a backup: the number drawn from "
                f"{RESTORE_SEQUENCE} went back): the caches start a new restore epoch"
            )
            self._restore_epoch = restored.decode() if isinstance(restored, bytes) else str(restored)
            self._l2_epoch = None  # L2's key space moves to the epoch: read by the next call if not by this probe
            self._learn_l2_epoch()
            self._last_drawn = drawn
        else:
            if (mark and drawn <= int(mark)) or (last is not None and drawn <= last):
                # Back, but the mark moved since it was read: another process's compare may have started the epoch
                # in between. Read now: this process kept its L1 (and served it) until its next poll.
                self._learn_l2_epoch()
            if last is None or drawn > last:
                self._last_drawn = drawn  # one at or below it, not noted, is compared again at the next poll

    def _fall_back_on_own_draw(self, drawn: int, last: int | None) -> None:
        """The mark could not be compared in Redis: compare with this process's own last draw. A restore seen so
        drops the caches now and keeps L2 off (`_redis_call`: its key space is still the epoch of before) until a
        poll starts the epoch."""
        if last is not None and drawn <= last:
            # This process's own draws went back: a restore. Dropped now (L1 would serve what the restore took
            # back all through the outage), the epoch started once Redis answers (`_check_restored`).
            if not self._restore_pending:
                self._forget_before_restore(why="the database went back while Redis did not answer", pending=True)
            self._restore_pending = True
            self._last_drawn = drawn
        elif last is None or drawn > last:
            self._last_drawn = drawn

    def _start_listener(self) -> None:
        """Listen for committed invalidations in a thread of this process (started again after a fork)."""
        with self._tick_lock:
            if self._listener_pid == os.getpid():
                return
            self._listener_pid = os.getpid()
        threading.Thread(target=self._listen, name="cache-invalidations", daemon=True).start()

    def _listen(self) -> None:
        """A subscriber only reads, so a connection that died without a word (a NAT or load balancer that
        dropped it while idle, a Redis failed over to another host) never raised: the process heard no write
        again, for ever. The channel is pinged, and one that stops answering is connected again."""
        pause = 0.5
        while self._listener_pid == os.getpid():
            pubsub = None
            try:
                pubsub = self.redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.invalidations_channel())
                pause = 0.5
                answered_at = pinged_at = time.monotonic()
                while self._listener_pid == os.getpid():
                    message = pubsub.get_message(timeout=min(1.0, self.listener_ping_seconds))
                    now = time.monotonic()
                    if message is not None:
                        answered_at = now
                        if message["type"] == "message":
                            self._heard(message["data"])
                    if now - answered_at > 3 * self.listener_ping_seconds:
                        raise ConnectionError("the invalidation channel answers no pings")
                    if now - pinged_at >= self.listener_ping_seconds:
                        pubsub.ping()
                        pinged_at = now
            except Exception:  # noqa: BLE001 - Redis away: the poll still brings every write, a second late
                self._polled_at = 0.0  # what was published meanwhile was not heard: the next read polls
                time.sleep(pause)
                pause = min(pause * 2, 30.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _heard(self, data: bytes) -> None:
        try:
            scope_key, generation = data.decode().split(" ")
            generation = int(generation)
        except ValueError:
            return
        if scope_key == POLICY_SCOPE:
            self._polled_at = 0.0  # reload on the next read
            return
        self._heard_of_write(scope_key, generation)

    def _reload_policies_safely(self, generation: int) -> None:
        try:
            self._reload_policies(generation)
        except Exception:
            logger.warning("cache policies could not be reloaded; keeping the ones in memory", exc_info=True)

    def _queue_publish(self, scope_key: str, generation: int) -> None:
        with self._publish_lock:
            self._pending_publishes[scope_key] = max(generation, self._pending_publishes.get(scope_key, 0))

    def _heard_of_write(self, scope: str, generation: int) -> None:
        """A write to `scope` committed (from the poll, the channel or this process): drop the L1 entries it
        invalidated, and remember it for 2 x POLL_MARGIN so a load that began before it fills no L1."""
        known = self._known_generations.get(scope)
        if known is None or known[0] < generation:
            self._known_generations[scope] = (generation, time.monotonic() + 2 * POLL_MARGIN.total_seconds())
        self.l1.drop_scope(scope, below_generation=generation)

    def _reload_policies(self, generation: int) -> None:
        from apps.caching.models import CachePolicy

        policies = {row.namespace: self._policy_from_row(row) for row in CachePolicy.objects.using(self.database)}
        for namespace, old in list(self._policies.items()):
            new = policies.get(namespace)
            if new is None or new != old:
                self.l1.clear(namespace)
        self._policies = policies
        self._policy_generation = generation

    @staticmethod
    def _policy_from_row(row) -> Policy:
        return Policy(
            namespace=row.namespace,
            enabled=row.enabled,
            l1=row.l1_enabled,
            l2=row.l2_enabled,
            l3=row.l3_enabled,
            ttl=row.ttl_seconds,
            swr=row.stale_while_revalidate_seconds,
            l1_max_entries=row.l1_max_entries,
            encrypt=row.encrypt or row.namespace in PHI_NAMESPACES,  # a row edited outside admin included
            generation=row.generation,
        )

    # --- keys ------------------------------------------------------------------------------------
    def key(self, policy: Policy, key_parts: Iterable[Any]) -> str:
        return self.hasher.digest(policy.namespace, policy.generation, *key_parts)

    def scope_key(self, scope: str) -> str:
        return self.hasher.digest("scope", scope)

    # --- the read path ---------------------------------------------------------------------------
    def get_or_load(
        self,
        namespace: str,
        key_parts: Iterable[Any],
        loader: Callable[[], Any],
        *,
        scope: str | None = None,
        ttl: int | None = None,
    ) -> Any:
        """The cached value of `key_parts`, or `loader()`'s, stored in every enabled tier (unless None).

        `ttl` shortens the policy's TTL for this read, never lengthens it."""
        ttl_check(ttl)
        arrived = time.monotonic()
        policy = self.policy(namespace, arrived=arrived)
        self._tally(namespace, "source", "requests")
        if not policy.enabled:
            _note_read(loaded=True)
            with self._loading(namespace):
                return loader()
        key = self.key(policy, key_parts)
        scope_key = self.scope_key(scope) if scope else ""
        found = self.lookup(policy, key, scope_key, arrived=arrived)
        if found.entry is not None and found.fresh:
            value = found.entry.value
        else:
            value = self._load_once(policy, key, scope_key, loader, found, ttl)
        _note_read(loaded=False)  # a load on the way has already said so, and that sticks
        return value

    @dataclass(slots=True)
    class Found:
        entry: Entry | None = None
        fresh: bool = False
        redis_generation: int | None = None
        db_generation: int | None = None
        stale_tier: str = ""  # the tier a stale entry came from: where serving it is counted
        restores: int = 0  # the process's count of restore epochs when the lookup began (what it read is as of)

    def lookup(self, policy: Policy, key: str, scope_key: str, *, arrived: float | None = None) -> Found:
        """Walk the tiers; a fresh hit is copied into the faster tiers above it.

        L1 is skipped unless the last poll started under two intervals before the read `arrived` (it polled then
        itself if one was due): another thread's poll may be running long, or the process was idle and its
        channel may have missed writes. L2 and L3 check generations, so the read waits for no poll."""
        now = self.clock()
        restores = self._restores  # before any tier is read: a restore seen since makes what was read unfit to copy
        stale: Entry | None = None
        stale_tier = ""
        if arrived is None:
            arrived = time.monotonic()
        if policy.l1 and arrived - self._polled_at < 2 * self.poll_interval:
            entry = self.l1.get(policy.namespace, key)
            if entry is not None and now < entry.fresh_until:
                self._tally(policy.namespace, "l1", "hits")
                return self.Found(entry, True)
            self._tally(policy.namespace, "l1", "misses")
            if entry is not None and entry.is_servable_stale(now):
                stale, stale_tier = entry, "l1"
        found = self.Found(restores=restores)
        if policy.l2:
            entry, found.redis_generation = self._l2_get(policy, key, scope_key)
            if entry is not None and self._behind_known(entry):
                entry = None  # Redis has not heard of a write this process has (a publish still pending)
            if entry is not None and now < entry.fresh_until:
                self._tally(policy.namespace, "l2", "hits")
                self._fill_l1(policy, key, entry, restores=restores)
                found.entry, found.fresh = entry, True
                return found
            if found.redis_generation is not None:
                self._tally(policy.namespace, "l2", "misses")
            if stale is None and entry is not None and entry.is_servable_stale(now):
                stale, stale_tier = entry, "l2"
        if policy.l3:
            entry, found.db_generation = self._l3_get(policy, key, scope_key)
            if entry is not None and entry.is_fresh(now):
                self._count(policy.namespace, "l3", hits=1)
                self._fill_l1(policy, key, entry, restores=restores)
                redis_generation = found.redis_generation
                space = self._l2_space_as_of(restores) if policy.l2 else None
                if space is not None and redis_generation == UNSET:
                    redis_generation = self._redis_generation_set(scope_key, found.db_generation, space=space)
                if space is not None and redis_generation is not None:
                    # Valid as of the database generation, which is never behind Redis's.
                    self._l2_set(policy, key, _with_generation(entry, redis_generation), space=space)
                return self.Found(entry, True, found.redis_generation, found.db_generation, restores=restores)
            self._count(policy.namespace, "l3", misses=1)
            if stale is None and entry is not None and entry.is_servable_stale(now):
                stale, stale_tier = entry, "l3"
        observed = max(found.redis_generation or 0, found.db_generation or 0)
        if stale is not None and stale.scope and stale.generation < observed:
            stale = None  # invalidated, not merely old: never served, not even inside the stale window
        found.entry, found.stale_tier = stale, stale_tier if stale is not None else ""
        return found

    def _load_once(self, policy: Policy, key: str, scope_key: str, loader, found: Found, ttl: int | None) -> Any:
        """Single flight: one loader per key in this process, and (with Redis) across processes.

        The threads that waited for a load get its outcome, whatever it was: a value, None (which no tier
        stores: an unknown patient, say) or the loader's error; they do not each load again."""
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            if found.entry is not None:  # someone is already reloading: the stale value will do
                self._count(policy.namespace, found.stale_tier, stale_serves=1)
                return found.entry.value
            # The load is this process's own, alive and doing what this thread would do: wait for it as long
            # as the Redis lock trusts a loader (not the brief wait for another process, after which each
            # waiting thread ran the loader too: 16 runs of a 5 s model for one key).
            if flight.done.wait(self.loader_lifetime):
                if flight.error is not None:
                    raise flight.error
                if flight.value is not _MISSING and not self._behind_seen(flight.generations, found, scope_key):
                    return flight.value
            again = self.lookup(policy, key, scope_key)
            if again.entry is not None and again.fresh:
                return again.entry.value
            return self._load_and_store(policy, key, scope_key, loader, again, ttl)
        try:
            lock, stored, generation = self._lock_or_stored(policy, key, scope_key, found)
            if stored is not None:  # another process stored it since this reader's lookup
                flight.generations = (generation, None)
                flight.value = stored.value
                return stored.value
            if lock is False:  # another process holds the lock
                if found.entry is not None:
                    self._count(policy.namespace, found.stale_tier, stale_serves=1)
                    return found.entry.value
                value = self._wait_for_other_process(policy, key, scope_key, flight, found)
                if value is not _MISSING:
                    flight.value = value
                    return value
            try:
                flight.value = self._load_and_store(
                    policy, key, scope_key, loader, found, ttl, lock=lock or None, flight=flight
                )
                return flight.value
            finally:
                if lock and not lock.released:
                    self._release(lock)
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _behind_seen(self, generations: tuple[int | None, int | None], found: Found, scope_key: str) -> bool:
        """Whether the load a reader waited for read its scope's `generations` before a write this reader has
        seen (in its own lookup, or heard of): its value is then older than that write, and a client that
        reads right after its own write must not be given it."""
        if not scope_key:
            return False
        redis_generation, db_generation = generations
        if found.redis_generation is not None and (redis_generation or 0) < found.redis_generation:
            return True
        if found.db_generation is not None and (db_generation or 0) < found.db_generation:
            return True
        known = self._known_generations.get(scope_key)
        loaded_under = db_generation if db_generation is not None else redis_generation
        return known is not None and (loaded_under or 0) < known[0]

    def _wait_for_other_process(
        self, policy: Policy, key: str, scope_key: str, flight: _Flight | None = None, found: Found | None = None
    ) -> Any:
        """The value another process is loading, once it is in L2; _MISSING if it will not come (Redis is
        away, the wait is over, or the loader let go of its lock without storing: None or an error).

        Never a value older than a write this reader knows of (`found`'s generations, or one this process
        heard of): Redis may not have the write's generation yet, and the other load may have begun before it."""
        deadline = time.monotonic() + self.single_flight_wait
        pause, released = 0.005, False
        while time.monotonic() < deadline:
            if not released:  # once released, look again at once
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            restores = self._restores
            entry, generation = self._l2_get(policy, key, scope_key)
            if generation is None:
                break  # Redis is unreachable: the value cannot reach us through it, so load it here
            if entry is not None and self._older_than_seen(entry, found or self.Found()):
                entry = None
            if entry is not None and entry.is_fresh(self.clock()):
                self._count(policy.namespace, "l2", hits=1)
                self._fill_l1(policy, key, entry, restores=restores)
                if flight is not None:
                    flight.generations = (generation, None)  # current when read
                return entry.value
            if released:
                break  # released, and still nothing stored: that load is over (None, or it failed)
            ok, held = self._redis_call(policy.namespace, lambda r: r.exists(self._l2_key("l", key)))
            released = ok and not held
        return _MISSING

    def _load_and_store(
        self, policy: Policy, key: str, scope_key: str, loader, found: Found, ttl: int | None, lock=None, flight=None
    ) -> Any:
        generations = self._generations_before_load(policy, scope_key, found)
        if flight is not None:  # what the threads waiting for this load compare with what they saw
            flight.generations = generations
        _note_read(loaded=True)
        with reads_from_primary(), self._loading(policy.namespace) as load:  # the generations came from the primary
            value = loader()
        return self.store(
            policy,
            key,
            scope_key,
            value,
            ttl=ttl,
            generations=generations,
            lock=lock,
            load_seconds=load.seconds,
            restores=found.restores,
        )

    @contextlib.contextmanager
    def _loading(self, namespace: str):
        """Count a load of the source, its time and whether it failed: a failed load is a load all the
        same (the read was not served by the cache), not a hit."""
        load = _Load()
        started = time.perf_counter()
        try:
            yield load
        except Exception:
            load.failed = True
            raise
        finally:  # a cancelled load too
            load.seconds = time.perf_counter() - started
            self._count(namespace, "source", loads=1, load_seconds=load.seconds, errors=int(load.failed))

    def _generations_before_load(self, policy: Policy, scope_key: str, found: Found) -> tuple[int | None, int | None]:
        """The scope's generations in Redis and the database, read *before* the loader runs: that
        ordering is what makes a write landing during the load invalidate what the load stores."""
        redis_generation, db_generation = found.redis_generation, found.db_generation
        if scope_key and policy.l2 and redis_generation is None:
            redis_generation = self._redis_generation(scope_key)
        if scope_key and db_generation is None and (policy.l3 or redis_generation in (None, UNSET)):
            db_generation = self._db_generation(scope_key)
        return redis_generation, db_generation

    def store(
        self,
        policy: Policy,
        key: str,
        scope_key: str,
        value: Any,
        *,
        ttl: int | None,
        generations: tuple,
        lock: HeldLock | None = None,
        load_seconds: float = 0.0,
        restores: int | None = None,
    ) -> Any:
        """Put a loaded value in every enabled tier whose generation is known (None is never stored), and
        return it as every tier gives it back: what JSON makes of it (tuples as lists, keys as text), so
        the caller that loaded it, the ones that waited and later L1 hits see what an L2 hit sees.

        A held single-flight lock is released in the same round trip as the L2 write, else (no L2 write, or
        it failed) right after it, before the slower L3 write, and in any case before this returns or raises:
        a store outlives the coroutine that was cancelled while awaiting it, so the store owns the lock.
        L2 and L3 readers compare an entry's generation with the current one; L1 hits do not, so L1 relies on
        this process having heard of any write since the load began. It remembers what it hears for
        2 x POLL_MARGIN, so a load slower than POLL_MARGIN asks the database before filling L1.

        `restores`: the process's count of restore epochs seen (`_restores`) before the load read anything (its
        lookup began); None: now. A value read before a restore this process has seen since goes in no tier: it is
        returned to its caller only (see `_store`)."""
        if restores is None:
            restores = self._restores
        try:
            return self._store(policy, key, scope_key, value, ttl, generations, lock, load_seconds, restores)
        finally:
            if lock is not None and not lock.released:
                self._release(lock)

    def _store(
        self, policy: Policy, key: str, scope_key: str, value: Any, ttl, generations, lock, load_seconds, restores: int
    ) -> Any:
        """A value loaded (even partly) before this process saw a restore epoch is of writes the restore may have taken
        back, its generations those of before: a write after the restore bumps the restored generation back to theirs,
        and made it valid again in every tier for its TTL. It is stored in none. Each tier checks again as it writes:
        L2 in the key space read before the count (`_l2_space_as_of`), L3 only while the database's generation is
        still the one read before the load (a restore the process has not seen yet moved it back), L1 checked again
        after its put (`_fill_l1`)."""
        if value is None:
            return None
        redis_generation, db_generation = generations
        lifetime = min(ttl, policy.ttl) if ttl else policy.ttl  # a caller's TTL never outlasts the admin's
        now = self.clock()
        raw, value = self.codec.dumps_as_read(value)
        size = self.codec.stored_size(raw, encrypt=policy.encrypt)
        memory = json_memory(raw) if self._l1_keeps(policy, size) else 0  # sized once, here: L1 hits never size
        entry = Entry(value, 0, now + lifetime, now + lifetime + policy.swr, scope_key, size, memory)
        sealed: dict[int, bytes] = {}  # by generation: the tiers' may differ (a publish Redis has not had yet)

        def stored(generation: int) -> bytes:
            if generation not in sealed:
                context = _sealed_context(key, _record_header(generation, entry.fresh_until, entry.stale_until))
                sealed[generation] = self.codec.wrap(raw, encrypt=policy.encrypt, context=context)
            return sealed[generation]

        space = self._l2_space_as_of(restores) if policy.l2 else None
        if self._restores != restores:
            return value  # read before a restore this process has seen since: for its caller only
        if space is not None and redis_generation == UNSET:
            redis_generation = self._redis_generation_set(scope_key, db_generation, space=space)
        if space is not None and (redis_generation is not None or not scope_key):
            entry_l2 = _with_generation(entry, redis_generation or 0)
            self._l2_set(policy, key, entry_l2, stored(redis_generation or 0), lock=lock, space=space)
        if lock is not None and not lock.released:
            self._release(lock)  # nothing in L2 for the waiters: they load at once, not after the L3 write
        if policy.l3 and (db_generation is not None or not scope_key) and self._restores == restores:
            self._l3_set(policy, key, _with_generation(entry, db_generation or 0), stored(db_generation or 0))
        generation = db_generation if db_generation is not None else redis_generation
        if scope_key and load_seconds >= POLL_MARGIN.total_seconds():
            current = self._db_generation(scope_key)
            if current is None or current > (generation or 0):
                return value  # written during the load (or unknown): not for L1, which would not check
        if generation is not None or not scope_key:
            self._fill_l1(policy, key, _with_generation(entry, generation or 0), restores=restores)
        return value

    # --- the async read path ---------------------------------------------------------------------
    def _prepare(
        self, namespace: str, key_parts, scope: str | None, counted: bool = False
    ) -> tuple[Policy, str, str, Found | None]:
        """`counted`: the read is counted as a request already (it goes round again)."""
        arrived = time.monotonic()
        policy = self.policy(namespace, arrived=arrived)
        if not counted:
            self._tally(namespace, "source", "requests")
        if not policy.enabled:
            return policy, "", "", None
        key = self.key(policy, key_parts)
        scope_key = self.scope_key(scope) if scope else ""
        found = self.lookup(policy, key, scope_key, arrived=arrived)
        if found.entry is None or not found.fresh:
            found.redis_generation, found.db_generation = self._generations_before_load(policy, scope_key, found)
        return policy, key, scope_key, found

    def _fresh_l1_value(self, namespace: str, key_parts: list, counted: bool = False) -> Any:
        """A fresh L1 hit, read in the event loop itself: that path has no I/O, so no thread hop, and no
        wait behind the database calls queued on asgiref's one sync thread. _MISSING when the policy is
        not loaded yet, a poll is due (it queries), or L1 has no fresh entry: `_prepare` then."""
        policy = self._policies.get(namespace)
        if policy is None or not policy.enabled or not policy.l1 or self._poll_due(time.monotonic()):
            return _MISSING
        entry = self.l1.get(namespace, self.key(policy, key_parts))
        if entry is None or self.clock() >= entry.fresh_until:
            return _MISSING
        if not counted:
            self._tally(namespace, "source", "requests")
        self._tally(namespace, "l1", "hits")
        return entry.value

    async def aget_or_load(
        self,
        namespace: str,
        key_parts: Iterable[Any],
        loader: Callable[[], Awaitable[Any]],
        *,
        scope: str | None = None,
        ttl: int | None = None,
        _counted: bool = False,
    ) -> Any:
        """`get_or_load` for coroutines: the tiers are read in a thread, the loader awaited in the loop.

        Concurrent misses of a key in one event loop share one load (other loops, as other processes,
        wait on the Redis lock: a future belongs to its loop); a stale value inside the SWR window is
        served while that load runs. A load cancelled (its request gone) is not the waiters' outcome:
        they go round again, each still one request in the counters (`_counted`)."""
        ttl_check(ttl)
        key_parts = list(key_parts)
        value = self._fresh_l1_value(namespace, key_parts, _counted)
        if value is not _MISSING:
            _note_read(loaded=False)
            return value
        policy, key, scope_key, found = await sync_to_async(self._prepare)(namespace, key_parts, scope, _counted)
        if found is None:
            _note_read(loaded=True)
            with self._loading(namespace):
                return await loader()
        if found.entry is not None and found.fresh:
            _note_read(loaded=False)
            return found.entry.value
        loop = asyncio.get_running_loop()
        pending = self._async_flights.get((loop, key))
        if pending is not None:
            if found.entry is not None:
                self._count(namespace, found.stale_tier, stale_serves=1)
                _note_read(loaded=False)
                return found.entry.value
            try:
                outcome = await asyncio.wait_for(asyncio.shield(pending), self.loader_lifetime)
            except TimeoutError:  # a load past a loader's lifetime is taken for hung, as in the sync path
                return await self._aload_and_store(policy, key, scope_key, loader, found, ttl)
            if outcome is _MISSING:  # that load was cancelled
                return await self.aget_or_load(namespace, key_parts, loader, scope=scope, ttl=ttl, _counted=True)
            value, generations = outcome
            if self._behind_seen(generations, found, scope_key):  # that load began before a write seen here
                return await self._aload_and_store(policy, key, scope_key, loader, found, ttl)
            _note_read(loaded=False)  # served the load another request made: this one loaded nothing
            return value
        # Its outcome: (value, the scope's generations it is valid as of), or _MISSING when cancelled.
        future = loop.create_future()
        self._async_flights[(loop, key)] = future
        seen = (found.redis_generation, found.db_generation)
        lock = None
        try:
            # Across processes, as the sync path. Taken in a thread: a coroutine cancelled meanwhile never had it
            # back, and every other process waited out its lifetime; the thread or `finally` lets it go then.
            claim = _LockClaim()

            def take() -> tuple[HeldLock | bool | None, Entry | None, int | None]:
                taken = self._lock_or_stored(policy, key, scope_key, found)
                if not claim.handed(taken[0]) and isinstance(taken[0], HeldLock):
                    self._release(taken[0])  # its coroutine is gone
                return taken

            try:
                lock, stored, generation = await sync_to_async(take)()
            except asyncio.CancelledError:
                lock = claim.abandon()  # taken already: let go below
                raise
            if stored is not None:
                future.set_result((stored.value, (generation, None)))
                _note_read(loaded=False)
                return stored.value
            if lock is False:
                if found.entry is not None:
                    self._count(namespace, found.stale_tier, stale_serves=1)
                    future.set_result((found.entry.value, seen))
                    _note_read(loaded=False)
                    return found.entry.value
                # Redis only, so not on the loop's one database thread, which this wait would hold.
                waiting = sync_to_async(self._wait_for_other_process, thread_sensitive=False)
                other = _Flight()  # the generation the other process's value was read under
                value = await waiting(policy, key, scope_key, other, found)
                if value is not _MISSING:
                    future.set_result((value, other.generations))
                    _note_read(loaded=False)
                    return value
            value = await self._aload_and_store(policy, key, scope_key, loader, found, ttl, lock=lock or None)
            future.set_result((value, seen))
            return value
        except asyncio.CancelledError:
            if not future.done():
                future.set_result(_MISSING)  # the waiters were not cancelled: they load again
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._async_flights.pop((loop, key), None)
            if lock and not lock.released and not lock.handed:
                await self._alet_go(lock)

    async def _alet_go(self, lock: HeldLock) -> None:
        """Let go of a lock from a coroutine, at once and to the end: on a thread of the loop's own pool (Redis
        only), not queued behind a store still running on asgiref's sync thread, and shielded, so a second
        cancellation does not drop the release and leave other processes waiting out the lock."""
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, self._release, lock))

    async def _aload_and_store(
        self, policy: Policy, key: str, scope_key: str, loader, found: Found, ttl: int | None, lock=None
    ) -> Any:
        """Await the loader and store its value under the generations `found` read before the load.

        Cancelled while the store runs in its thread (which nothing can stop), the coroutine returns at once and
        leaves the lock to the store, which lets it go with its L2 write; cancelled before the thread began it,
        the store is not made and the caller lets the lock go, so another process's waiter loads at once."""
        _note_read(loaded=True)
        with reads_from_primary(), self._loading(policy.namespace) as load:
            value = await loader()
        generations = (found.redis_generation, found.db_generation)
        handoff = _StoreHandoff()

        def store() -> Any:
            if not handoff.begin():
                return None  # its coroutine is gone, and has let the lock go
            return self.store(
                policy,
                key,
                scope_key,
                value,
                ttl=ttl,
                generations=generations,
                load_seconds=load.seconds,
                lock=lock,
                restores=found.restores,
            )

        try:
            return await sync_to_async(store)()
        except asyncio.CancelledError:
            if lock is not None and handoff.abandon():
                lock.handed = True  # the store lets it go, with the value in L2
            raise

    def _l1_keeps(self, policy: Policy, stored_bytes: int) -> bool:
        """Whether L1 may keep a value of this stored size: only then is its memory worked out (`json_memory`)."""
        return policy.l1 and stored_bytes <= self.l1.max_bytes // MemoryTier.LARGEST_SHARE

    def _fill_l1(self, policy: Policy, key: str, entry: Entry, *, restores: int) -> None:
        """`restores`: the process's count of restore epochs before `entry` was read (see `_store`)."""
        if not policy.l1:
            return
        if self._behind_known(entry) or self._restores != restores:
            return  # loaded before a write this process has already heard of, or before a restore it has seen
        evicted = self.l1.put(policy.namespace, key, entry, max_entries=policy.l1_max_entries, now=self.clock())
        if evicted:
            self._count(policy.namespace, "l1", evictions=evicted)
        # A write heard of, or a restore seen (counted before L1 is dropped), between the check and the put.
        if self._behind_known(entry) or self._restores != restores:
            self.l1.drop(policy.namespace, key)

    def _behind_known(self, entry: Entry) -> bool:
        if not entry.scope:
            return False
        known = self._known_generations.get(entry.scope)
        return known is not None and entry.generation < known[0]

    # --- L2: Redis -------------------------------------------------------------------------------
    def redis(self):
        if self._redis is None and self._redis_factory is not None:
            self._redis = self._redis_factory()
        return self._redis

    def invalidations_channel(self) -> str:
        """Pub/sub is one space for the whole Redis server, whatever db a client selected: on one channel, every
        deployment (or test run) sharing the server heard the others' policy edits, and each one made this
        process's next read poll, with the database. One channel a db: a release before this one publishes on the
        bare name, which the poll makes up for within a second."""
        db = (self.redis().connection_pool.connection_kwargs or {}).get("db", 0)
        return f"{INVALIDATIONS_CHANNEL}:{db}"

    def _l2_key(self, kind: str, key: str, space: str | None = None) -> str:
        """`space`: the key space (`_l2_epoch`) to use, else the current one."""
        return f"cpc:{space or self._l2_epoch}:{kind}:{key}"

    def _l2_space_as_of(self, restores: int) -> str | None:
        """The L2 key space to write what was read when this process had seen `restores` restore epochs; None (write
        nothing) once it has seen another, or Redis is away. Read before the count is compared: a probe counts the
        restore (`_forget_before_restore`) before it moves the key space, so a space read while the count is still
        `restores` is at worst the one of before the restore, which no process reads once it has seen the epoch."""
        if self._l2_epoch is None:
            self._learn_l2_epoch()
        space = self._l2_epoch
        return space if self._restores == restores else None

    def _learn_l2_epoch(self) -> str | None:
        """Key L2 by the Redis server's run id, read once a poll. A Redis restarted from a snapshot (or a
        replica promoted) holds generations older than the writes since, which would make the values
        stored before those writes valid again: a new server is a new, empty key space instead."""
        if self.redis() is None or not self.breaker.available():
            return None
        try:
            mark = self._probe_l2()
        except Exception:  # noqa: BLE001 - any Redis trouble: L2 waits for a server that answers
            self._l2_epoch = None
            self.breaker.failure()
            return None
        self.breaker.success()
        return mark

    def _probe_l2(self) -> str:
        """Ask the server its run id, and the restore epoch and mark (raises when it does not answer); also the
        breaker's probe. A restore epoch this process has not seen yet drops what it holds from before it. Returns
        the mark read ('' when none)."""
        pipe = self.redis().pipeline(transaction=False)
        pipe.execute_command("INFO", "server")
        pipe.mget([RESTORE_EPOCH_KEY, RESTORE_MARK_KEY])
        info, (epoch, mark) = pipe.execute()
        epoch = epoch.decode() if isinstance(epoch, bytes) and _A_NUMBER.fullmatch(epoch) else ""
        mark = mark.decode() if isinstance(mark, bytes) and _A_NUMBER.fullmatch(mark) else ""
        known = self._restore_epoch
        if known and not epoch and time.monotonic() - self._last_probe_ok < KEY_LOST_TRUST_SECONDS:
            # The key alone was lost (FLUSHDB, eviction), not the database restored: a restore always writes one.
            # This process saw the epoch a moment ago, so it is the current one: written back, nothing dropped.
            # (A restore the fleet saw meanwhile is seen again here: this process's draw goes back.)
            self.redis().set(RESTORE_EPOCH_KEY, known, nx=True)
            epoch = self.redis().get(RESTORE_EPOCH_KEY)
            epoch = epoch.decode() if isinstance(epoch, bytes) and _A_NUMBER.fullmatch(epoch) else ""
            if epoch == known:
                logger.warning(
                    "cache restore epoch key lost from Redis (flushed or evicted), not a database restore: "
                    "written back, caches kept"
                )
        if not epoch:
            if self._epoch_missing_at is None:
                seconds, microseconds = self.redis().time()
                self._epoch_missing_at = seconds * 1_000_000 + microseconds
        else:
            missing_at, self._epoch_missing_at = self._epoch_missing_at, None
            if known == "" and missing_at is not None and int(epoch) < missing_at:
                # Older than the moment this process found the key missing: the epoch of before a flush, written
                # back by another process (a restore's epoch is Redis's time when it is seen, after that moment).
                logger.warning("cache restore epoch written back after a flush, not a database restore: adopted")
                known = epoch
        if known is not None and epoch != known:
            self._forget_before_restore(lost=not epoch)
        self._restore_epoch = epoch
        self._last_probe_ok = time.monotonic()
        run_id = str(info["run_id"])[:12]
        self._l2_epoch = f"{run_id}.{epoch}" if epoch else run_id
        return mark

    def _forget_before_restore(self, *, lost: bool = False, why: str = "", pending: bool = False) -> None:
        """The database was restored: what this process holds may be of writes it no longer has. `pending`: its epoch
        is not started yet (Redis did not answer), so no L2 is read or written until it is."""
        # First L2 is let go of (its key space is the epoch of before, learned again by the next call, `_redis_call`),
        # then the restore is counted: a read that began before the count is cached in no tier (see `_store`), and
        # one that began after it reads no L2 of before the restore.
        self._restore_pending = pending
        self._l2_epoch = None
        self._restores += 1
        if why:
            logger.warning("%s: dropping L1 and the local caches and reloading the cache policies", why)
        elif lost:  # not known to be current (this process had not polled for a while): taken for a restore
            logger.warning(
                "cache restore epoch key lost from Redis and this process has not polled lately: a database "
                "restore may have been missed, dropping L1 and the local caches and reloading the cache policies"
            )
        else:
            logger.warning(
                "cache restore epoch changed (another process saw the database restored from a backup): dropping "
                "L1 and the local caches and reloading the cache policies"
            )
        self._last_drawn = None  # numbers drawn before the restore: not compared with those drawn after it
        self.l1.clear()
        self._known_generations.clear()
        with self._publish_lock:
            self._pending_publishes.clear()  # generations the database may not have reached again
            self._pending_drawn = 0
        self._policy_generation = None  # reloaded by the poll
        self._polled_at = 0.0
        for hook in list(_restore_hooks):  # API clients, rate-limit policies: what the restore took back, too
            try:
                hook()
            except Exception:
                logger.exception("a restore hook failed: %r", hook)

    def _redis_call(
        self, namespace: str, call: Callable[[Any], Any], *, restore_check: bool = False
    ) -> tuple[bool, Any]:
        """`restore_check`: the poll's compare, the one call made while a restore seen is not yet an epoch (L2 still
        keyed by the epoch of before, its entries and generations those of the writes the restore took back)."""
        client = self.redis()
        if client is None or (self._restore_pending and not restore_check) or not self.breaker.available():
            return False, None
        if self._l2_epoch is None:
            # Not polled yet (a cold stack whose first poll runs in another thread) or the server was lost: ask
            # it now. Taken for away, each reader of a cold stack loaded past the single-flight lock.
            self._learn_l2_epoch()
            if self._l2_epoch is None:
                return False, None
        try:
            result = call(client)
        except Exception:  # noqa: BLE001 - any Redis trouble: stop calling it for a while
            self._l2_epoch = None  # and when it answers again, it may be another server: ask first
            self.breaker.failure()
            self._count(namespace, "l2", errors=1)
            return False, None
        self.breaker.success()
        return True, result

    def _l2_get(self, policy: Policy, key: str, scope_key: str) -> tuple[Entry | None, int | None]:
        """The L2 entry (None if absent or invalidated) and the scope's generation in Redis (None if unreachable)."""
        if scope_key:
            value_key, generation_key = self._l2_key("v", key), self._l2_key("g", scope_key)
            ok, result = self._redis_call(
                policy.namespace, lambda r: r.execute_command("MGET", value_key, generation_key)
            )
        else:
            ok, result = self._redis_call(policy.namespace, lambda r: [*r.mget([self._l2_key("v", key)]), None])
        if not ok:
            return None, None
        return self._l2_entry(policy, key, scope_key, *result)

    def _l2_entry(
        self,
        policy: Policy,
        key: str,
        scope_key: str,
        blob: bytes | None,
        raw_generation: bytes | None,
        *,
        count_errors: bool = True,
    ) -> tuple[Entry | None, int]:
        """`_l2_get`'s answer from the value and the scope's generation as Redis returned them. `count_errors`:
        False for a second look at a value the read's lookup already found unreadable (and counted)."""
        if scope_key and raw_generation is None:
            return None, UNSET  # nothing to check an entry against: none is served
        generation = self._generation_number(scope_key, raw_generation) if scope_key else 0
        if generation == UNSET:
            return None, UNSET
        if blob is None:
            return None, generation
        try:
            stored_generation, fresh_until, stale_until, payload = blob.split(b"|", 3)
            # Read here, with what may fail: a value in the clear has no tag over its header to refuse a bad one.
            fresh_until, stale_until = float(fresh_until), float(stale_until)
            if int(stored_generation) != generation:
                return None, generation  # invalidated: not worth opening
            header = blob[: len(blob) - len(payload) - 1]
            context = _sealed_context(key, header)
            sized = self._l1_keeps(policy, len(payload))
            value, memory = self.codec.decode_sized(payload, context, sealed_only=policy.encrypt, sized=sized)
        except (ValueError, CodecError):
            if count_errors:
                self._count(policy.namespace, "l2", errors=1)
            return None, generation
        entry = Entry(value, generation, fresh_until, stale_until, scope_key, len(payload), memory)
        return entry, generation

    def _l2_set(
        self,
        policy: Policy,
        key: str,
        entry: Entry,
        blob: bytes | None = None,
        lock: HeldLock | None = None,
        space: str | None = None,
    ) -> None:
        """`blob`: the value as `store` sealed it for this entry's header, else it is sealed here. `space`: the key
        space the entry's generation was read in (`_l2_space_as_of`), else the current one."""
        header = _record_header(entry.generation, entry.fresh_until, entry.stale_until)
        if blob is None:
            blob = self.codec.encode(entry.value, encrypt=policy.encrypt, context=_sealed_context(key, header))
        record = header + b"|" + blob
        expires_ms = max(1, int((entry.stale_until - self.clock()) * 1000))

        def write(client):
            if lock is None:
                return client.set(self._l2_key("v", key, space), record, px=expires_ms)
            pipe = client.pipeline(transaction=False)
            pipe.set(self._l2_key("v", key, space), record, px=expires_ms)
            self._release_script(client)(keys=[lock.name], args=[lock.token], client=pipe)
            return pipe.execute()

        ok, _ = self._redis_call(policy.namespace, write)
        if ok:
            self._count(policy.namespace, "l2", bytes=len(record))
            if lock is not None:
                lock.released = True

    def _redis_generation(self, scope_key: str) -> int | None:
        ok, raw = self._redis_call("", lambda r: r.mget([self._l2_key("g", scope_key)])[0])
        if not ok:
            return None
        return self._generation_number(scope_key, raw)

    def _generation_number(self, scope_key: str, raw: bytes | None) -> int:
        """A scope's generation as Redis holds it; UNSET when it has none, or a value that is not a number (only
        written from outside: an operator's SET, a corrupted key), which is then replaced as an unset one is."""
        if raw is None:
            return UNSET
        if _A_NUMBER.fullmatch(raw):
            return int(raw)
        if scope_key not in self._bad_generation_keys and len(self._bad_generation_keys) < 1000:
            self._bad_generation_keys.add(scope_key)
            # Not the value: whatever was written may name a patient. The scope key is a digest.
            logger.warning("cache generation key of scope %s in Redis is not a number; taken for unset", scope_key)
        return UNSET

    def _redis_generation_set(self, scope_key: str, db_generation: int | None, *, space: str) -> int | None:
        """Give an UNSET scope its generation in Redis again: the database's, read before the load. None (no
        L2 write) unless Redis then holds that one: a publish that set it first may be of a write that
        landed during the load, which the value must not be stored as valid for. `space`: the key space it was
        read in (`_l2_space_as_of`): never a restore epoch's that began after the database was read."""
        if db_generation is None:
            return None
        generation_key = self._l2_key("g", scope_key, space)

        def set_unless_set(client):
            if self._set_unless_a_number is None:
                self._set_unless_a_number = client.register_script(_SET_UNLESS_A_NUMBER)
            return self._set_unless_a_number(keys=[generation_key], args=[db_generation, GENERATION_KEY_MS])

        ok, raw = self._redis_call("", set_unless_set)
        return db_generation if ok and raw is not None and int(raw) == db_generation else None

    def _redis_lock(self, policy: Policy, key: str) -> HeldLock | bool | None:
        """A held lock, False when another process holds it, None when Redis cannot arbitrate."""
        if not policy.l2:
            return None
        lock = HeldLock(self._l2_key("l", key), os.urandom(8).hex())
        expires_ms = int(self.loader_lifetime * 1000)  # a crashed loader's lock expires
        ok, acquired = self._redis_call(
            policy.namespace,
            lambda r: self._take_lock_script(r)(
                keys=[lock.name], args=[lock.token, expires_ms, self._takeover_above_ms]
            ),
        )
        if not ok:
            return None
        return lock if acquired else False

    def _lock_or_stored(
        self, policy: Policy, key: str, scope_key: str, found: Found
    ) -> tuple[HeldLock | bool | None, Entry | None, int | None]:
        """`_redis_lock`, with a second look in L2 in the same round trip: (the lock, a fresh entry stored since
        the reader's lookup or None, the scope's generation in Redis). A reader that missed just before another
        process stored the value found the lock free, and loaded it again; it is served that value instead."""
        if not policy.l2:
            return None, None, None
        restores = self._restores
        lock = HeldLock(self._l2_key("l", key), os.urandom(8).hex())
        expires_ms = int(self.loader_lifetime * 1000)
        value_key, generation_key = self._l2_key("v", key), self._l2_key("g", scope_key)

        def take(client):
            pipe = client.pipeline(transaction=False)
            self._take_lock_script(client)(
                keys=[lock.name], args=[lock.token, expires_ms, self._takeover_above_ms], client=pipe
            )
            # After the SET: a lock found free was let go after its holder's value was stored.
            pipe.mget([value_key, generation_key] if scope_key else [value_key])
            acquired, values = pipe.execute()
            return [acquired, *values, None][:3]

        ok, result = self._redis_call(policy.namespace, take)
        if not ok:
            return None, None, None
        acquired, blob, raw_generation = result
        lock_or_not = lock if acquired else False
        if blob is None:
            return lock_or_not, None, None
        entry, generation = self._l2_entry(policy, key, scope_key, blob, raw_generation, count_errors=False)
        if entry is None or not entry.is_fresh(self.clock()) or self._older_than_seen(entry, found):
            return lock_or_not, None, None
        if acquired:
            self._release(lock)
        self._tally(policy.namespace, "l2", "hits")
        self._fill_l1(policy, key, entry, restores=restores)
        return None, entry, generation

    def _older_than_seen(self, entry: Entry, found: Found) -> bool:
        """Whether an entry was loaded before a write this reader knows of: seen in its lookup (Redis's or the
        database's generation), or heard of by this process."""
        if not entry.scope:
            return False
        seen = max(found.redis_generation or 0, found.db_generation or 0)
        return entry.generation < seen or self._behind_known(entry)

    def _release(self, lock: HeldLock) -> None:
        ok, _ = self._redis_call("", lambda r: self._release_script(r)(keys=[lock.name], args=[lock.token]))
        if not ok and self.redis() is not None:
            # Not called (the breaker opened on the failed L2 write this release follows) or failed. A Redis that
            # is away took the lock with it, but one that refused or dropped just that write (a value over its
            # size limit, a write that timed out) still holds it: every other process's reader of the key would
            # wait for a value that never comes, then load past it, for the lock's whole lifetime. Handed to the
            # tick, which lets it go once Redis is called again (the token makes a late release harmless).
            with self._publish_lock:
                self._pending_releases[lock.name] = (lock.token, time.monotonic() + self.loader_lifetime)
        lock.released = True

    def _retry_releases(self) -> None:
        """Let go of the locks `_release` could not, in one round trip; those that expired meanwhile are forgotten."""
        with self._publish_lock:
            now = time.monotonic()
            self._pending_releases = {name: held for name, held in self._pending_releases.items() if held[1] > now}
            pending = {name: token for name, (token, _) in self._pending_releases.items()}
        if not pending:
            return

        def release(client):
            pipe = client.pipeline(transaction=False)
            script = self._release_script(client)
            for name, token in pending.items():
                script(keys=[name], args=[token], client=pipe)
            pipe.execute()

        ok, _ = self._redis_call("", release)
        if ok:
            with self._publish_lock:
                for name, token in pending.items():
                    if self._pending_releases.get(name, ("",))[0] == token:
                        self._pending_releases.pop(name, None)

    def _take_lock_script(self, client):
        if self._take_lock is None:
            self._take_lock = client.register_script(_TAKE_LOCK)
        return self._take_lock

    def _release_script(self, client):
        if self._release_lock is None:
            self._release_lock = client.register_script(_RELEASE_IF_OURS)
        return self._release_lock

    # --- L3: the database ------------------------------------------------------------------------
    def _l3_get(self, policy: Policy, key: str, scope_key: str) -> tuple[Entry | None, int | None]:
        from apps.caching.models import CacheEntry, CacheScopeGeneration

        entries, generations = CacheEntry._meta.db_table, CacheScopeGeneration._meta.db_table
        sql = (
            f"SELECT g.generation, e.value, e.generation, e.fresh_until, e.stale_until "  # noqa: S608 - table names
            f"FROM (SELECT %s AS k, %s AS s) q "
            f"LEFT JOIN {entries} e ON e.key = q.k "
            f"LEFT JOIN {generations} g ON g.scope = q.s"
        )
        try:
            with connections[self.database].cursor() as cursor:
                cursor.execute(sql, [key, scope_key])
                current, blob, stored, fresh_until, stale_until = cursor.fetchone()
        except Exception:
            logger.warning("L3 cache read failed", exc_info=True)
            self._count(policy.namespace, "l3", errors=1)
            return None, None
        current = int(current or 0)
        if blob is None or (scope_key and int(stored) != current):
            return None, current
        try:
            context = _sealed_context(key, _record_header(int(stored), float(fresh_until), float(stale_until)))
            value, memory = self.codec.decode_sized(
                bytes(blob), context, sealed_only=policy.encrypt, sized=self._l1_keeps(policy, len(blob))
            )
        except CodecError:
            self._count(policy.namespace, "l3", errors=1)
            return None, current
        return Entry(value, int(stored), fresh_until, stale_until, scope_key, len(blob), memory), current

    def _l3_set(self, policy: Policy, key: str, entry: Entry, blob: bytes) -> None:
        """`blob`: the value sealed for this entry's generation and freshness (see `_sealed_context`).

        A scoped entry is written only while its scope's generation in the database is still the entry's, in the
        same statement: one read before a restore (which this process may not have seen yet) carries a generation
        the restore took back, and a write after the restore bumps it back to that number, which made the row
        valid again for its TTL. One read before a write made during the load would be refused by every reader."""
        from apps.caching.models import CacheEntry, CacheScopeGeneration

        entries, generations = CacheEntry._meta.db_table, CacheScopeGeneration._meta.db_table
        columns = ("namespace", "scope", "generation", "value", "fresh_until", "stale_until")
        sql = (
            f"INSERT INTO {entries} (key, {', '.join(columns)}) "  # noqa: S608 - table and column names
            f"SELECT %s, %s, %s, %s, %s, %s, %s "
            f"WHERE %s = '' OR COALESCE((SELECT g.generation FROM {generations} g WHERE g.scope = %s), 0) = %s "
            f"ON CONFLICT (key) DO UPDATE SET {', '.join(f'{column} = excluded.{column}' for column in columns)}"
        )
        params = [
            key, policy.namespace, entry.scope, entry.generation, blob, entry.fresh_until, entry.stale_until,
            entry.scope, entry.scope, entry.generation,
        ]  # fmt: skip
        try:
            with connections[self.database].cursor() as cursor:
                cursor.execute(sql, params)
                written = cursor.rowcount
        except Exception:
            logger.warning("L3 cache write failed", exc_info=True)
            self._count(policy.namespace, "l3", errors=1)
            return
        if written:
            self._count(policy.namespace, "l3", bytes=len(blob))

    def _db_generation(self, scope_key: str) -> int | None:
        from apps.caching.models import CacheScopeGeneration

        try:
            return (
                CacheScopeGeneration.objects.using(self.database)
                .filter(scope=scope_key)
                .values_list("generation", flat=True)
                .first()
                or 0
            )
        except Exception:  # noqa: BLE001
            return None

    # --- invalidation ----------------------------------------------------------------------------
    def invalidate_scopes(self, scopes: Iterable[str]) -> None:
        """Bump the scopes' generations in the caller's transaction; publish them when it commits.

        A scope's first row starts at the time in microseconds, not 1: its rows are pruned once idle, and a row
        starting again at 1 would make the entries (and the Redis generation) of an earlier one valid again. A bump
        moves on to at least the time in microseconds too, not one more: a restore puts the generation back, and one
        more reached the number it took back again, under which a process that had not seen the restore yet stored
        what it read before it (the L3 INSERT's compare was its only guard) for every process. The database's clock
        on PostgreSQL (processes on several hosts), which a restore does not take back."""
        from apps.caching.models import DATABASE_MICROSECONDS_SQL, CacheScopeGeneration, scope_generation_start

        table = CacheScopeGeneration._meta.db_table
        stamp, stamp_params = self._database_now()
        # One statement for all of them (a bulk data fix bumps thousands: a statement each took seconds), in the
        # keys' order, so two writers lock shared rows in the same order.
        keys = sorted({scope if scope == POLICY_SCOPE else self.scope_key(scope) for scope in scopes})
        greatest = "GREATEST" if connections[self.database].vendor == "postgresql" else "MAX"
        upsert = (
            f"ON CONFLICT (scope) DO UPDATE SET generation = {greatest}({table}.generation + 1, excluded.generation), "
            f"updated_at = excluded.updated_at RETURNING scope, generation"
        )
        bumped: dict[str, int] = {}
        drawn = None
        with connections[self.database].cursor() as cursor:
            if connections[self.database].vendor == "postgresql" and keys:
                # The same statement draws once from RESTORE_SEQUENCE (a CTE is evaluated once): a restore takes
                # this draw back with the write, so it is seen though no poll drew between the backup and it.
                cursor.execute(
                    f"WITH d AS (SELECT {_DRAW} AS n) "  # noqa: S608
                    f"INSERT INTO {table} (scope, generation, updated_at) SELECT key, {DATABASE_MICROSECONDS_SQL}, "
                    f"{stamp} FROM unnest(%s::text[]) AS key, d ORDER BY key {upsert}, (SELECT n FROM d)",
                    [*stamp_params, keys],
                )
                rows = cursor.fetchall()
                bumped.update((scope, generation) for scope, generation, _ in rows)
                drawn = rows[0][2] if rows else None
            else:  # SQLite: rows of VALUES, as many as its bound parameters allow
                for start in range(0, len(keys), SCOPES_PER_STATEMENT):
                    chunk = keys[start : start + SCOPES_PER_STATEMENT]
                    generation = scope_generation_start()
                    cursor.execute(
                        f"INSERT INTO {table} (scope, generation, updated_at) VALUES "  # noqa: S608
                        + ", ".join([f"(%s, %s, {stamp})"] * len(chunk))
                        + f" {upsert}",
                        [value for key in chunk for value in (key, generation, *stamp_params)],
                    )
                    bumped.update(cursor.fetchall())
        for scope_key in bumped:  # this process's own reads see the write at once, committed or not
            self.l1.drop_scope(scope_key)
        bumped_at = time.monotonic()
        transaction.on_commit(lambda: self._published(bumped, bumped_at, drawn), using=self.database)

    def _database_now(self) -> tuple[str, list]:
        """SQL for "now" by the database's clock where processes may run on several hosts (PostgreSQL)."""
        if connections[self.database].vendor == "postgresql":
            return "statement_timestamp()", []
        return "%s", [timezone.now()]

    def _restamp(self, scope_keys: list[str]) -> None:
        """Stamp committed bumps again: their first stamp may be older than a poll's look-back by now."""
        from apps.caching.models import CacheScopeGeneration

        table = CacheScopeGeneration._meta.db_table
        stamp, stamp_params = self._database_now()
        try:
            with connections[self.database].cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET updated_at = {stamp} WHERE scope IN ({', '.join(['%s'] * len(scope_keys))})",  # noqa: S608
                    [*stamp_params, *scope_keys],
                )
        except Exception:  # Redis has the generation; other processes' L1 entries then wait out their TTL
            logger.warning("committed cache invalidations could not be stamped again", exc_info=True)

    def _published(self, bumped: dict[str, int], bumped_at: float, drawn: int | None = None) -> None:
        if drawn is not None:
            self.note_drawn(drawn)
        if time.monotonic() - bumped_at > POLL_MARGIN.total_seconds() / 2:
            self._restamp(list(bumped))  # a long transaction: the polls since its bump looked past it
        for scope_key, generation in bumped.items():
            if scope_key == POLICY_SCOPE:
                self._polled_at = 0.0  # this process reloads on its next read
                continue
            self._heard_of_write(scope_key, generation)
            self._queue_publish(scope_key, generation)
        self._retry_publishes(announce=bumped)

    def draw_in_write(self) -> None:
        """Draw once from RESTORE_SEQUENCE in the caller's transaction, raised into the mark once it commits: for a
        write that bumps no generation (a local cache's version, apps/core/local_cache.py). A restore takes the draw
        back with the write (invalidate_scopes draws in its own statement)."""
        if connections[self.database].vendor != "postgresql":
            return
        with connections[self.database].cursor() as cursor:
            cursor.execute(f"SELECT {_DRAW}")
            drawn = cursor.fetchone()[0]
        if drawn is not None:

            def raise_mark() -> None:
                self.note_drawn(drawn)
                self._retry_publishes()

            transaction.on_commit(raise_mark, using=self.database)

    def note_drawn(self, drawn: int) -> None:
        """A committed write's draw from RESTORE_SEQUENCE: raised into the mark with the next publish."""
        with self._publish_lock:
            self._pending_drawn = max(self._pending_drawn, drawn)

    def _retry_publishes(self, announce: dict[str, int] | None = None) -> None:
        """Send generations to Redis; those that fail are retried on the next tick. `announce`: a
        committed write's bumps, also told to every process's listener in the same round trip."""
        with self._publish_lock:
            if not self._pending_publishes and not announce and not self._pending_drawn:
                return
            drawing = bool(self._pending_drawn)
        if self.redis() is None:  # no L2: nothing to send them to
            with self._publish_lock:
                self._pending_publishes.clear()
                self._pending_drawn = 0
            return
        if self._l2_epoch is None or (drawing and time.monotonic() - self._last_probe_ok >= self.poll_interval):
            # A process that writes before it ever read (a worker), or that has not looked at the restore epoch for
            # a poll's time: a draw of before an epoch another process started since, raised into it, took the
            # mark above the restored sequence, and the next poll started a second, false epoch. Asked first.
            self._learn_l2_epoch()
        sent: dict[str, Any] = {}

        def publish(client):
            # Copied here, after any probe of this call (`_redis_call` asks the server first when the last call
            # failed): a probe that finds a new restore epoch forgets what is pending (`_forget_before_restore`),
            # and copies taken before it sent generations and a draw of before the restore into the new epoch.
            # The key space is taken with them: a probe in another thread forgets (under the lock) before it moves it.
            with self._publish_lock:
                pending = dict(self._pending_publishes)
                pending_drawn = self._pending_drawn
                l2_epoch = self._l2_epoch
                restore_epoch = self._restore_epoch
            if l2_epoch is None:  # another thread's call failed meanwhile: the server may be another one
                return None
            sent.update(pending=pending, drawn=pending_drawn)
            if self._set_if_greater is None:
                self._set_if_greater = client.register_script(_SET_IF_GREATER)
            pipe = client.pipeline(transaction=False)
            for scope_key, generation in pending.items():
                self._set_if_greater(
                    keys=[f"cpc:{l2_epoch}:g:{scope_key}"], args=[generation, GENERATION_KEY_MS], client=pipe
                )
            for scope_key, generation in (announce or {}).items():
                pipe.publish(self.invalidations_channel(), f"{scope_key} {generation}")
            if pending_drawn:
                if self._raise_mark is None:
                    self._raise_mark = client.register_script(RAISE_RESTORE_MARK)
                self._raise_mark(
                    keys=[RESTORE_MARK_KEY, RESTORE_EPOCH_KEY], args=[pending_drawn, restore_epoch or ""], client=pipe
                )
            return pipe.execute()

        ok, answers = self._redis_call("", publish)
        if not ok or not sent:
            return
        pending, pending_drawn = sent["pending"], sent["drawn"]
        kept = answers[: len(pending)]
        # Not raised: the restore epoch moved since this process last read it (the time guard above looks only
        # once a poll's time). Read now: a new epoch forgets the draw; a lost key, written back, keeps it for the next.
        epoch_moved = bool(pending_drawn) and answers[-1] == 1
        with self._publish_lock:
            for scope_key, generation in pending.items():
                if self._pending_publishes.get(scope_key) == generation:
                    self._pending_publishes.pop(scope_key, None)
            if self._pending_drawn == pending_drawn and not epoch_moved:
                self._pending_drawn = 0
        if epoch_moved:
            self._learn_l2_epoch()
        # A generation Redis kept over a publish: a later write's (out of order), or one ahead of the database.
        ahead = {scope_key: raw for scope_key, raw in zip(pending, kept, strict=True) if raw is not None}
        if ahead:
            self._set_back_generations_ahead(ahead)

    def _set_back_generations_ahead(self, kept: dict[str, bytes]) -> None:
        """Set the generations Redis holds past the database's back to the database's. Redis never legitimately
        holds one the database has not reached (it is published once committed, or set from the database): one
        ahead was written from outside (an operator's SET, a database restored under a Redis that kept its
        keys), and every later publish, lower, was dropped, leaving the entries stored before those writes valid.
        Set back only if the key still holds what was kept, so a publish that landed meanwhile stands."""
        from apps.caching.models import CacheScopeGeneration

        try:
            current = dict(
                CacheScopeGeneration.objects.using(self.database)
                .filter(scope__in=list(kept))
                .values_list("scope", "generation")
            )
        except Exception:  # the next publish of the scope looks again
            logger.warning("cache generations kept by Redis could not be checked", exc_info=True)
            return
        back = {k: (raw, current[k]) for k, raw in kept.items() if k in current and current[k] < int(raw)}
        if not back:
            return

        def set_back(client):
            if self._set_back_if_unchanged is None:
                self._set_back_if_unchanged = client.register_script(_SET_BACK_IF_UNCHANGED)
            pipe = client.pipeline(transaction=False)
            for scope_key, (raw, generation) in back.items():
                self._set_back_if_unchanged(
                    keys=[self._l2_key("g", scope_key)], args=[raw, generation, GENERATION_KEY_MS], client=pipe
                )
            pipe.execute()

        ok, _ = self._redis_call("", set_back)
        for scope_key in back:
            if ok and scope_key not in self._bad_generation_keys and len(self._bad_generation_keys) < 1000:
                self._bad_generation_keys.add(scope_key)
                logger.warning(
                    "cache generation key of scope %s in Redis was ahead of the database; set back", scope_key
                )

    def clear_local(self) -> None:
        """Forget everything this process holds (tests, and after a namespace clear)."""
        self.l1.clear()
        self._policies = {}
        self._policy_generation = None
        self._known_generations.clear()
        self._pending_publishes.clear()
        self._polled_at = 0.0
        with self._stats_lock:
            self._stats.clear()

    # --- counters --------------------------------------------------------------------------------
    def _tally(self, namespace: str, tier: str, counter: str) -> None:
        """One more of `counter`: `_count` without the keyword loop, for the per-read counters."""
        with self._stats_lock:
            self._stats[(namespace, tier)][counter] += 1

    def _count(self, namespace: str, tier: str, **deltas: float) -> None:
        if not namespace:
            return
        with self._stats_lock:
            counters = self._stats[(namespace, tier)]
            for name, delta in deltas.items():
                counters[name] += delta

    def stats(self) -> dict[tuple[str, str], dict[str, float]]:
        """This process's counters since the last flush."""
        with self._stats_lock:
            return {k: dict(v) for k, v in self._stats.items()}

    def _start_flusher(self) -> None:
        """Start this process's flusher (again after a fork: a thread does not survive one)."""
        with self._tick_lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
        threading.Thread(target=self._flush_idle, name="cache-stats-flush", daemon=True).start()

    def _flush_idle(self) -> None:
        """Flush what the reads counted, every `flush_interval`: with this thread running a read's `tick` does not
        (a flush is tens of statements, which landed on whichever read was due), and a process whose reads stopped
        still reports its last ones (six cached calls counted one hit, for good, when only reads flushed)."""
        while self._flusher_pid == os.getpid():
            time.sleep(self.flush_interval)
            if time.monotonic() - self._flushed_at < self.flush_interval or not self._has_stats():
                continue
            # Without the tick lock: a read's poll due meanwhile would have been skipped (it never waits for the
            # lock), and flushes may overlap (cache_stats_record adds deltas, in one row order).
            try:
                self.flush_stats()
            except Exception:  # never let it stop the flushes
                logger.debug("cache counters not flushed", exc_info=True)
            finally:
                connections.close_all()  # this thread's own: handed back until the next quiet spell

    def _has_stats(self) -> bool:
        with self._stats_lock:
            return any(any(counters.values()) for counters in self._stats.values())

    def flush_at_exit(self) -> None:
        """The flusher dies with the process: a worker's restart or a script's end lost its last counters. Bounded
        (`exit_timeout`): written by a thread of its own, given up (and logged) against a database that hangs.

        Its L1 entries and bytes are written as 0 (the counters as they are): its memory goes with it, and written
        as it held them, with a fresh stamp, a restarted worker's entries counted on the policy page (and against
        its L1 bound) for another selectors.L1_GAUGES_FRESH_FOR. Written even with nothing counted since the last
        flush, for the same reason."""
        if not self.background or not (self._has_stats() or self.l1.usage()):
            return
        done = threading.Event()

        def write() -> None:
            try:
                self.flush_stats(exiting=True)
            finally:
                done.set()
                connections.close_all()

        try:
            threading.Thread(target=write, name="cache-stats-exit-flush", daemon=True).start()
        except RuntimeError:  # the interpreter is finalizing: no thread starts any more
            logger.warning("cache counters not written at exit (no thread to write them)")
            return
        if not done.wait(self.exit_timeout):
            logger.warning(
                "cache counters not written at exit: the database did not answer in %.1f s", self.exit_timeout
            )

    def flush_stats(self, *, exiting: bool = False) -> None:
        """Write the counters since the last flush and L1's entries and bytes now (0 when `exiting`: the process
        holds nothing once it has ended)."""
        from apps.caching.services import cache_stats_record

        with self._stats_lock:
            deltas, self._stats = dict(self._stats), defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self._flushed_at = time.monotonic()
        l1_usage = self.l1.usage()
        if exiting:
            l1_usage = dict.fromkeys(l1_usage, (0, 0))
        try:
            cache_stats_record(process=self.process, deltas=deltas, l1_usage=l1_usage, using=self.database)
        except Exception:
            logger.warning("cache counters could not be stored", exc_info=True)
            with self._stats_lock:
                for k, counters in deltas.items():
                    for name, delta in counters.items():
                        self._stats[k][name] += delta


_MISSING = object()


@dataclass(slots=True)
class _Load:
    seconds: float = 0.0
    failed: bool = False


class _Flight:
    """One load of a key in this process, which the threads that want the same key wait for."""

    __slots__ = ("done", "error", "generations", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = _MISSING
        self.error: BaseException | None = None
        self.generations: tuple[int | None, int | None] = (None, None)  # the scope's, read before the load


class _LockClaim:
    """A lock being taken in a thread for a coroutine that may be cancelled before it gets the answer: whichever
    of the two comes second lets the lock go."""

    __slots__ = ("_abandoned", "_guard", "_lock")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._abandoned = False
        self._lock: HeldLock | bool | None = None

    def handed(self, lock: HeldLock | bool | None) -> bool:
        """The thread's side: whether the coroutine is still there to hold `lock`."""
        with self._guard:
            self._lock = lock
            return not self._abandoned

    def abandon(self) -> HeldLock | bool | None:
        """The cancelled coroutine's side: the lock if the thread took it already (it lets go of a later one)."""
        with self._guard:
            self._abandoned = True
            return self._lock


@dataclass(slots=True)
class HeldLock:
    """A single-flight lock this process holds in Redis: its key and the token only the holder knows.
    `handed`: a store running in a thread for a cancelled coroutine has it, and lets it go."""

    name: str
    token: str
    released: bool = False
    handed: bool = False


class _StoreHandoff:
    """A store sent to a thread for a coroutine that may be cancelled before it is made: whichever of the two
    comes first decides. The thread began: it stores and lets the lock go. The coroutine gave up first: the
    thread stores nothing, and the coroutine lets the lock go itself, at once."""

    __slots__ = ("_guard", "_state")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._state = ""

    def begin(self) -> bool:
        """The thread's side: whether to store (the coroutine has not given up)."""
        with self._guard:
            if self._state == "abandoned":
                return False
            self._state = "begun"
            return True

    def abandon(self) -> bool:
        """The cancelled coroutine's side: whether the thread has the store, and the lock, already."""
        with self._guard:
            if self._state == "begun":
                return True
            self._state = "abandoned"
            return False


def _record_header(generation: int, fresh_until: float, stale_until: float) -> bytes:
    """An entry's generation and freshness as its L2 record spells them (`g|fresh|stale|value`)."""
    return b"%d|%r|%r" % (generation, float(fresh_until), float(stale_until))  # as L3's float columns read back


def _sealed_context(key: str, header: bytes) -> bytes:
    """What a sealed value authenticates besides itself: its cache key (a card copied under another patient's
    key does not open) and its record's header. Someone able to write to Redis or the table could otherwise
    put the current generation and a far-future freshness on the patient's own earlier card, sealed with the
    same key, and have it served as current. The header is in the tag, so checking it costs no more work."""
    return key.encode() + b"|" + header


def _with_generation(entry: Entry, generation: int) -> Entry:
    return Entry(entry.value, generation, entry.fresh_until, entry.stale_until, entry.scope, entry.size, entry.memory)


_default: CacheStack | None = None
_default_lock = threading.Lock()


def on_restore(hook: Callable[[], None]) -> Callable[[], None]:
    """Call `hook` (no arguments) whenever this process sees the database restored from a backup."""
    _restore_hooks.append(hook)
    return hook


def default_stack() -> CacheStack:
    """This process's cache stack, on the settings' Redis (L2 off when REDIS_URL is unset)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from apps.metrics.recorder import recorder

                # Flushed when the process goes quiet and at its exit, as its request timings are (neither in the
                # test process, whose tests flush explicitly).
                _default = CacheStack.from_settings(
                    background=recorder.background, exit_timeout=settings.METRICS_EXIT_FLUSH_SECONDS
                )
                atexit.register(_default.flush_at_exit)
    return _default


def _settings_redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def get_or_load(namespace: str, key_parts: Iterable[Any], loader: Callable[[], Any], **options) -> Any:
    return default_stack().get_or_load(namespace, key_parts, loader, **options)


async def aget_or_load(
    namespace: str, key_parts: Iterable[Any], loader: Callable[[], Awaitable[Any]], **options
) -> Any:
    return await default_stack().aget_or_load(namespace, key_parts, loader, **options)


def invalidate_scopes(*scopes: str) -> None:
    default_stack().invalidate_scopes(scopes)
