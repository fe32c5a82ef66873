"""Writes of the core app: the worker heartbeat."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Model, QuerySet

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


def fields_update(queryset: QuerySet, changes: dict) -> tuple[Model, dict]:
    """Change some fields of the one row `queryset` selects, locked, validated as the admin would
    (full_clean), saved; returns the row and the values before. What applying a recommendation does."""
    with transaction.atomic():
        row = queryset.select_for_update().get()
        before = {name: getattr(row, name) for name in changes}
        for name, value in changes.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
    return row, before
