"""Celery beat's liveness heartbeat: the scheduler touches its file after each pass of beat's loop.

Beat runs one loop in its main thread; each pass reads the schedule from the database and sends what is
due. A pass stuck on a lock or a hung connection left beat Running, and no nightly job was sent again. A
thread touching the file would keep it fresh then; the loop's own pass does not. The beat Deployment
selects this scheduler (`--scheduler`) and probes `python -m apps.core.liveness beat`.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from apps.core.liveness import TOUCH_INTERVAL, heartbeat_path, touch_heartbeat


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
