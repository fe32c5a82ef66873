"""A per-process cache that every process drops within about a second of a change anywhere.

Each process keeps its own entries and reads the namespace's version from the shared cache (Redis,
or the file cache when embedded) at most once per `check_interval`. A change bumps the version, so
reads cost no query and no network round trip, yet edits reach every process quickly. When the
shared cache is unreachable the local entries are bypassed: stale data is never served to save time.

A hung Redis (stopped, partitioned) answers nothing until the socket timeout, so no request may wait
on it more than once: one version read at a time per namespace (other threads bypass meanwhile), and
after a failure every local cache of the process stops calling the shared cache for
CACHE_REDIS_BREAKER_SECONDS, then a background thread, not a request, probes it.

The same read takes the cache stack's restore epoch (apps/caching/stack.py, RESTORE_EPOCH_KEY): a database
restored from a backup took back edits that had bumped the versions, and nothing bumps them since, so a new
epoch drops the entries too, also in a process that makes no cached read (whose stack never polls).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import transaction

from apps.caching.stack import RESTORE_EPOCH_KEY, default_stack, on_restore
from apps.core.breaker import shared_cache_breaker  # here too: the local caches' users import it from this module

logger = logging.getLogger(__name__)


def _shared_version_and_epoch(key: str) -> tuple[Any, bytes | None]:
    """The shared version of `key` and the restore epoch (None when none, or no Redis), in one round trip."""
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):  # the file cache (embedded): no restore epoch
        return cache.get(key), None
    version, epoch = client.get_client(write=False).mget([client.make_key(key), RESTORE_EPOCH_KEY])
    return (None if version is None else client.decode(version)), epoch


# Every local cache of the process, for `clear_all_local_caches`.
_instances: weakref.WeakSet[VersionedLocalCache] = weakref.WeakSet()


def clear_all_local_caches() -> None:
    """Drop every local cache's entries in this process: the database was restored from a backup (seen by the
    cache stack, apps/caching/stack.py), and no edit bumps the versions of what the restore took back."""
    for local in list(_instances):
        local._clear()


@on_restore
def _restored() -> None:
    clear_all_local_caches()  # looked up when called: a test stands in for it


class VersionedLocalCache:
    def __init__(self, namespace: str, *, check_interval: float = 1.0, ttl: float = 60.0, max_entries: int = 10_000):
        _instances.add(self)
        self.namespace = namespace
        self.check_interval = check_interval
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._version: str | None = None
        # The last one read (b"": none); kept when the key is lost (not a restore: a restore always writes one).
        self._restore_epoch: bytes | None = None
        self._checked_at = 0.0
        self._clears = 0  # bumped by every clear: a load that began before one must not store what it read
        self._lock = threading.Lock()
        self._reading_version = threading.Lock()

    @property
    def version_key(self) -> str:
        return f"local-cache-version:{self.namespace}"

    def get(self, key: str, loader: Callable[[], Any]) -> Any:
        """The cached value, or `loader()`'s (stored unless it is None)."""
        if not self._current():
            return loader()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        clears = self._clears
        value = loader()
        if value is not None:
            with self._lock:
                if clears != self._clears:
                    # Read before a change this process has since heard of (a revoke): stored, it would be
                    # served until its TTL ran out. Returned once, to the caller that asked before the change.
                    return value
                self._entries[key] = (now + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def invalidate(self) -> None:
        """Drop this process's entries now and every other process's once the change is committed."""
        self._clear()
        default_stack().draw_in_write()  # a restore that takes this edit back is seen by the next poll
        transaction.on_commit(self._bump)

    def _clear(self) -> None:
        with self._lock:
            self._clears += 1
            self._entries.clear()

    def forget(self) -> None:
        """Drop this process's entries and re-read the shared version on the next read (tests)."""
        self._clear()
        self._version = None
        shared_cache_breaker.reset()

    def _bump(self) -> None:
        # Tried even while the breaker is open: an edit is rare, and a revoke must reach the other
        # processes if the shared cache is back.
        try:
            cache.set(self.version_key, uuid.uuid4().hex, timeout=None)
        except Exception:  # noqa: BLE001 - the entries' TTL still bounds staleness
            shared_cache_breaker.failure()
            logger.warning("could not publish a new %s version; other processes catch up by TTL", self.namespace)
        else:
            shared_cache_breaker.success()
        self._clear()

    def _forget_version(self) -> None:
        # Whatever changed while the shared cache was out of reach is unknown: start over when it is back.
        self._clear()
        self._version = None

    def _current(self) -> bool:
        """Whether the local entries may be used; re-reads the shared version when due."""
        now = time.monotonic()
        if now - self._checked_at < self.check_interval and self._version is not None:
            return True
        if not shared_cache_breaker.available():
            self._forget_version()
            return False
        if not self._reading_version.acquire(blocking=False):
            return False  # another thread is reading it: bypass rather than wait on the same socket
        try:
            version, epoch = _shared_version_and_epoch(self.version_key)
            if version is None:
                version = uuid.uuid4().hex
                cache.add(self.version_key, version, timeout=None)
                version = cache.get(self.version_key) or version
        except Exception:  # noqa: BLE001 - no shared version, no local cache
            shared_cache_breaker.failure()
            self._forget_version()
            return False
        finally:
            self._reading_version.release()
        restored = epoch is not None and self._restore_epoch is not None and epoch != self._restore_epoch
        if version != self._version or restored:
            self._clear()
            self._version = version
        if epoch is not None or self._restore_epoch is None:
            self._restore_epoch = epoch or b""  # b"": none yet (a first epoch is a restore too)
        self._checked_at = now
        return True


class NegativeCache:
    """Keys (digests) recently looked up and not found, each for `ttl` seconds, at most `max_entries` (the
    oldest go first): a flood of made-up tokens or session cookies costs one query each, not one per request.

    Apart from any cache of found values, so the flood can never push a real client out. Only for keys the
    server makes at random (tokens, session keys): one cannot turn valid after it was looked up. `clock` is
    an attribute so tests can move time themselves.
    """

    def __init__(self, *, ttl: float = 5.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._expiries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            expiry = self._expiries.get(key)
            if expiry is None:
                return False
            if expiry <= self.clock():
                del self._expiries[key]
                return False
            return True

    def __len__(self) -> int:
        return len(self._expiries)

    def add(self, key: str) -> None:
        with self._lock:
            self._expiries[key] = self.clock() + self.ttl
            self._expiries.move_to_end(key)
            while len(self._expiries) > self.max_entries:
                self._expiries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._expiries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._expiries.clear()
