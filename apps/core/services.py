"""Writes of the core app: the worker heartbeat."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from django.core.cache import cache

from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, worker_ping_cache_key


def worker_heartbeat_record(*, hostname: str | None = None, nonce: str | None = None) -> dict:
    """Record that a worker is alive and consuming; /readyz reads it back.

    A ping (`manage.py ping_worker`) passes a nonce so its sender can find its own answer even
    while beat's periodic heartbeats keep arriving.
    """
    beat = {"at": datetime.now(UTC).isoformat(), "hostname": hostname or socket.gethostname()}
    # Kept for a day so that /readyz can say how stale it is instead of "never".
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, beat, timeout=24 * 3600)
    if nonce:
        cache.set(worker_ping_cache_key(nonce), beat, timeout=300)
    return beat
