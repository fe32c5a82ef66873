"""A circuit breaker whose probe runs in the background, never in a request.

A Redis that is down refuses at once, but a hung one (stopped, partitioned) answers nothing until the
socket timeout. A breaker that lets one request through to probe ("half-open") makes that request wait
the timeout once per back-off period in every process. Here callers only read a timestamp: once the
back-off has passed, the first caller to ask starts one thread that probes, and is told "not yet".
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)

_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


class CircuitBreaker:
    """Open from the last failure (seen after the call gave up, so a timeout does not eat the back-off)
    until a background probe succeeds."""

    CLOSED, OPEN = "closed", "open"

    def __init__(self, probe: Callable[[], object], *, name: str, open_seconds: float | None = None):
        self._probe_call = probe
        self.name = name
        self._open_seconds = open_seconds
        self._failed_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()
        self.trips = 0
        _breakers.add(self)

    @property
    def open_seconds(self) -> float:
        """The back-off; settings' CACHE_REDIS_BREAKER_SECONDS unless the breaker was given its own."""
        return settings.CACHE_REDIS_BREAKER_SECONDS if self._open_seconds is None else self._open_seconds

    @property
    def state(self) -> str:
        return self.CLOSED if self._failed_at is None else self.OPEN

    def seconds_until_probe(self) -> float:
        """How long until the open breaker next lets a probe try the dependency (0 when due or closed)."""
        failed_at = self._failed_at
        return 0.0 if failed_at is None else max(0.0, self.open_seconds - (time.monotonic() - failed_at))

    def available(self) -> bool:
        """Whether to call the dependency now; when a probe is due, starts it and answers False."""
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
                logger.warning("%s unreachable; not called for %.1fs at a time", self.name, self.open_seconds)
            self._failed_at = time.monotonic()

    def success(self) -> None:
        if self._failed_at is not None:
            with self._lock:
                if self._failed_at is not None:
                    logger.info("%s reachable again", self.name)
                self._failed_at = None

    def reset(self) -> None:
        """Closed, with no probe in flight (tests; a forked child, where the probe thread does not exist)."""
        self._lock = threading.Lock()
        self._failed_at, self._probing = None, False

    def _start_probe(self) -> None:
        with self._lock:
            if self._probing or self._failed_at is None:
                return
            self._probing = True
        try:
            threading.Thread(target=self._probe, name=f"probe {self.name}", daemon=True).start()
        except RuntimeError:  # "can't start new thread" (a process at its thread limit): the next caller retries
            self._probing = False
            logger.warning("%s: could not start its probe thread; trying again on the next call", self.name)

    def _probe(self) -> None:
        try:
            self._probe_call()
        except Exception:  # noqa: BLE001 - still down: back off again from now
            self.failure()
        else:
            self.success()
        finally:
            self._probing = False


def _reset_after_fork() -> None:
    for breaker in list(_breakers):
        breaker.reset()


os.register_at_fork(after_in_child=_reset_after_fork)


def _probe_database() -> None:
    from django.db import connection, connections

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # the probe thread's own connection


def _probe_shared_cache() -> None:
    from django.core.cache import cache

    cache.get("local-cache-probe")


# One per process for every local cache (apps/core/local_cache.py), the limiter and the cache stack
# (apps/caching/stack.py): they all call the same shared cache.
shared_cache_breaker = CircuitBreaker(_probe_shared_cache, name="shared cache")


# For the database work that is not a request's own purpose (request rollups flushed on a request's thread,
# the /metrics database figures): after a failure it is skipped for a while, rather than each caller
# waiting out the pool's timeout (10 s: past Prometheus's scrape timeout) while the database is away.
metrics_database_breaker = CircuitBreaker(_probe_database, name="database (metrics)", open_seconds=30)
