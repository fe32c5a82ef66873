"""A per-process cache that every process drops within about a second of a change anywhere.

Each process keeps its own entries and reads the namespace's version from the shared cache (Redis,
or the file cache when embedded) at most once per `check_interval`. A change bumps the version, so
reads cost no query and no network round trip, yet edits reach every process quickly. When the
shared cache is unreachable the local entries are bypassed: stale data is never served to save time.

A hung Redis (stopped, partitioned) answers nothing until the socket timeout, so no request may wait
on it more than once: one version read at a time per namespace (other threads bypass meanwhile), and
after a failure every local cache of the process stops calling the shared cache for
CACHE_REDIS_BREAKER_SECONDS, then a background thread, not a request, probes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


class SharedCacheBreaker:
    """Whether this process may call the shared cache, for all its local caches at once.

    Down from when a failure was seen (after the call gave up, so a timeout does not eat the back-off);
    once the back-off has passed, one background thread probes and closes it or starts the back-off
    again. Callers only read a timestamp: none waits on a socket while the shared cache is down."""

    PROBE_KEY = "local-cache-probe"

    def __init__(self, open_seconds: float | None = None):
        self._open_seconds = open_seconds
        self._failed_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()
        self.trips = 0

    @property
    def open_seconds(self) -> float:
        return settings.CACHE_REDIS_BREAKER_SECONDS if self._open_seconds is None else self._open_seconds

    @property
    def state(self) -> str:
        return "closed" if self._failed_at is None else "open"

    def available(self) -> bool:
        """Whether to call the shared cache now; when a probe is due, starts it and answers False."""
        failed_at = self._failed_at
        if failed_at is None:
            return True
        if time.monotonic() - failed_at >= self.open_seconds:
            self._start_probe()
        return False

    def failure(self) -> None:
        with self._lock:
            if self._failed_at is None:
                self.trips += 1
                logger.warning("shared cache unreachable; local caches bypassed for %.0fs", self.open_seconds)
            self._failed_at = time.monotonic()

    def success(self) -> None:
        if self._failed_at is not None:
            with self._lock:
                self._failed_at = None

    def reset(self) -> None:
        """Closed, with no probe in flight (tests; a forked child)."""
        self._lock = threading.Lock()
        self._failed_at, self._probing = None, False

    def _start_probe(self) -> None:
        with self._lock:
            if self._probing or self._failed_at is None:
                return
            self._probing = True
        threading.Thread(target=self._probe, name="shared-cache-probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            cache.get(self.PROBE_KEY)
        except Exception:  # noqa: BLE001 - still down: back off again from now
            self.failure()
        else:
            self.success()
        finally:
            self._probing = False


shared_cache_breaker = SharedCacheBreaker()
# A probe thread does not survive a fork: the child starts closed and probes for itself.
os.register_at_fork(after_in_child=shared_cache_breaker.reset)


class VersionedLocalCache:
    def __init__(self, namespace: str, *, check_interval: float = 1.0, ttl: float = 60.0, max_entries: int = 10_000):
        self.namespace = namespace
        self.check_interval = check_interval
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._version: str | None = None
        self._checked_at = 0.0
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
        value = loader()
        if value is not None:
            with self._lock:
                self._entries[key] = (now + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def invalidate(self) -> None:
        """Drop this process's entries now and every other process's once the change is committed."""
        self._entries.clear()
        transaction.on_commit(self._bump)

    def forget(self) -> None:
        """Drop this process's entries and re-read the shared version on the next read (tests)."""
        self._entries.clear()
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
        self._entries.clear()

    def _forget_version(self) -> None:
        # Whatever changed while the shared cache was out of reach is unknown: start over when it is back.
        self._entries.clear()
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
            version = cache.get(self.version_key)
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
        if version != self._version:
            self._entries.clear()
            self._version = version
        self._checked_at = now
        return True
