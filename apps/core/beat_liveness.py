"""Celery beat's liveness heartbeat: the scheduler touches its file after each pass of beat's loop.

Beat runs one loop in its main thread; each pass reads the schedule from the database and sends what is
due. A pass stuck on a lock or a hung connection left beat Running, and no nightly job was sent again. A
thread touching the file would keep it fresh then; the loop's own pass does not. The beat Deployment
selects this scheduler (`--scheduler`) and probes `python -m apps.core.liveness beat`.
"""

from __future__ import annotations

import logging
from functools import partial

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


def _log_retry(exc: Exception, interval: float) -> None:
    logger.error("beat: Connection error: %s. Trying again in %s seconds...", exc, interval)
