"""The worker's heartbeat is judged by beat's schedule of the task core.heartbeat, whatever it is named: with
"Worker heartbeat" renamed and retimed to 120 s, /readyz said `worker: error, 60.4s ago` of a healthy worker (the
schedule was looked up by its name, and the 10 s setting stood in for it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, heartbeat_interval_seconds, probe_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean():
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _heartbeat_schedule(name: str, every: int, **fields) -> PeriodicTask:
    PeriodicTask.objects.filter(task="core.heartbeat").delete()
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task="core.heartbeat", interval=interval, queue="default", **fields)


def test_a_renamed_heartbeat_schedule_is_still_the_heartbeat(settings):
    _heartbeat_schedule("Heartbeat (every 2 min)", 120)
    assert heartbeat_interval_seconds() == 120.0  # was 10.0: the settings' interval
    stamped = datetime.now(UTC) - timedelta(seconds=70)  # a healthy worker's heartbeat, 70 s into its 120 s
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": stamped.isoformat(), "hostname": "w1"}, timeout=3600)
    assert probe_worker()["state"] == "ok"  # was down (past 60 s by the settings)
    status, detail = core_selectors._probe_worker()  # /readyz's worker check
    assert status == core_selectors.OK, detail  # was error: "last heartbeat 70.0s ago"


def test_an_enabled_heartbeat_schedule_is_preferred_to_a_disabled_one():
    _heartbeat_schedule("Old heartbeat", 300, enabled=False)
    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="New heartbeat", task="core.heartbeat", interval=every, queue="default")
    assert heartbeat_interval_seconds() == 30.0


def test_no_heartbeat_schedule_falls_back_to_the_setting(settings):
    PeriodicTask.objects.filter(task="core.heartbeat").delete()
    assert heartbeat_interval_seconds() == float(settings.WORKER_HEARTBEAT_INTERVAL_SECONDS)
