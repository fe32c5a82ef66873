"""A per-process cache that every process drops within about a second of a change anywhere.

Each process keeps its own entries and reads the namespace's version from the shared cache (Redis,
or the file cache when embedded) at most once per `check_interval`. A change bumps the version, so
reads cost no query and no network round trip, yet edits reach every process quickly. When the
shared cache is unreachable the local entries are bypassed: stale data is never served to save time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


class VersionedLocalCache:
    def __init__(self, namespace: str, *, check_interval: float = 1.0, ttl: float = 60.0, max_entries: int = 10_000):
        self.namespace = namespace
        self.check_interval = check_interval
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._version: str | None = None
        self._checked_at = 0.0
        self._down_until = 0.0
        self._lock = threading.Lock()

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
        self._down_until = 0.0

    def _bump(self) -> None:
        try:
            cache.set(self.version_key, uuid.uuid4().hex, timeout=None)
        except Exception:  # noqa: BLE001 - the entries' TTL still bounds staleness
            logger.warning("could not publish a new %s version; other processes catch up by TTL", self.namespace)
        self._entries.clear()

    def _current(self) -> bool:
        """Whether the local entries may be used; re-reads the shared version when due."""
        now = time.monotonic()
        if now - self._checked_at < self.check_interval and self._version is not None:
            return True
        if now < self._down_until:
            return False
        try:
            version = cache.get(self.version_key)
            if version is None:
                version = uuid.uuid4().hex
                cache.add(self.version_key, version, timeout=None)
                version = cache.get(self.version_key) or version
        except Exception:  # noqa: BLE001 - no shared version, no local cache
            self._entries.clear()
            self._version = None
            self._down_until = now + self.check_interval  # and no waiting on the socket every request
            return False
        if version != self._version:
            self._entries.clear()
            self._version = version
        self._checked_at = now
        return True
