"""Celery beat's liveness heartbeat: the scheduler touches its file after each pass of beat's loop.

Beat runs one loop in its main thread; each pass reads the schedule from the database and sends what is
due. A pass stuck on a lock or a hung connection left beat Running, and no nightly job was sent again. A
thread touching the file would keep it fresh then; the loop's own pass does not. The beat Deployment
selects this scheduler (`--scheduler`) and probes `python -m apps.core.liveness beat`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.db import connection
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Connection

from apps.core.liveness import TOUCH_INTERVAL, heartbeat_path, touch_heartbeat

logger = logging.getLogger(__name__)


class HeartbeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler (the settings' CELERY_BEAT_SCHEDULER), touching the beat heartbeat."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = heartbeat_path("beat")
        # Beat sleeps up to max_interval between passes: a longer one (beat_max_loop_interval) would let
        # a healthy beat's file age past the probe's limit.
        self.max_interval = min(self.max_interval, TOUCH_INTERVAL)

    def tick(self, *args, **kwargs) -> float:
        interval = super().tick(*args, **kwargs)
        touch_heartbeat(self.heartbeat)
        return interval

    def _ensure_connected(self) -> Connection:
        """Celery's first connection to the broker (when an entry is first due), touching the heartbeat each
        second its retry loop waits: beat waiting for RabbitMQ is alive, and a restart would drop the entry
        it is sending (already marked run), where waiting sends it when the broker is back."""
        return self.connection.ensure_connection(
            _log_retry,
            self.app.conf.broker_connection_max_retries,
            callback=partial(touch_heartbeat, self.heartbeat),
        )


def scheduled_task_lock(key: str) -> None:
    """Hold, until the caller's transaction ends, the lock of one scheduled task's check-then-create. Beat may
    run twice for a while (an evicted pod terminating beside its replacement): both send each entry, and two
    workers each found no run of it yet. PostgreSQL only; SQLite runs one write transaction at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"scheduled:{key}"])


def beat_schedule_name(request) -> str | None:
    """The beat schedule (django-celery-beat's `periodic_task_name` header) that sent the task of this Celery
    request, or None: sent by hand, or called directly. A worker's request holds the header as an attribute;
    an eager `apply(headers=...)` under `headers`."""
    name = getattr(request, "periodic_task_name", None)
    headers = getattr(request, "headers", None)
    if name is None and isinstance(headers, dict):
        name = headers.get("periodic_task_name")
    return name if isinstance(name, str) and name else None


def schedule_interval(name: str) -> timedelta | None:
    """How often the interval schedule named `name` fires (as an admin left it), or None: no such row, or a
    crontab."""
    from django_celery_beat.models import PeriodicTask

    row = PeriodicTask.objects.filter(name=name, interval__isnull=False)
    found = row.values_list("interval__every", "interval__period").first()
    if found is None:
        return None
    every, period = found
    try:
        return timedelta(**{period: every})
    except TypeError:  # a period timedelta does not know: nothing to go by
        return None


def _log_retry(exc: Exception, interval: float) -> None:
    logger.error("beat: Connection error: %s. Trying again in %s seconds...", exc, interval)
