"""Beat after the database was restored from a backup: it takes the restored schedules at its next pass, though
their change stamp (django_celery_beat's PeriodicTasks row) went back. The restore is simulated by putting the rows
back with plain SQL, as pg_restore writes them (no model code, no new stamp)."""

from __future__ import annotations

import pytest
from celery import Celery
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.beat_liveness import HeartbeatScheduler

pytestmark = pytest.mark.django_db(transaction=True)


def _stamp() -> object:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_update FROM django_celery_beat_periodictasks WHERE ident = 1")
        return cursor.fetchone()[0]


def test_beat_sends_again_a_schedule_the_restore_enabled_again():
    app = Celery("d-beat-restore", set_as_current=False)
    app.conf.update(broker_url="memory://", timezone="UTC")  # nothing is sent: the schedule read is the point
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    task = PeriodicTask.objects.create(name="d nightly", task="d.nothing", interval=every)
    scheduler = HeartbeatScheduler(app=app)
    assert "d nightly" in scheduler.schedule
    stamp_at_backup = _stamp()

    task.enabled = False  # edited after the backup (admin saves a new stamp)
    task.save()
    assert "d nightly" not in scheduler.schedule

    with connection.cursor() as cursor:  # the restore: the row and the stamp as the backup holds them
        cursor.execute("UPDATE django_celery_beat_periodictask SET enabled = true WHERE id = %s", [task.pk])
        cursor.execute("UPDATE django_celery_beat_periodictasks SET last_update = %s WHERE ident = 1",
                       [stamp_at_backup])  # fmt: skip
    assert "d nightly" in scheduler.schedule
