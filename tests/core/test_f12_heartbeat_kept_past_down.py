"""The worker heartbeat was stored for a flat day while its down threshold follows the "Worker heartbeat"
schedule: retimed to 2 days (down past 12 days), the key expired a day after each beat and the state read
"never", /readyz an error ("no worker heartbeat recorded yet") between two beats of a healthy worker. It is now
kept a day past the down threshold."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, heartbeat_thresholds
from apps.core.services import worker_heartbeat_record

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean():
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _retime(every: int, period: str) -> None:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    task, _ = PeriodicTask.objects.get_or_create(
        name="Worker heartbeat", defaults={"task": "core.heartbeat", "interval": interval, "queue": "default"}
    )
    task.interval, task.crontab = interval, None
    task.save()


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_heartbeat_retimed_to_two_days_is_kept_past_its_down_threshold():
    _retime(2, IntervalSchedule.DAYS)
    late_after, down_after = heartbeat_thresholds()
    assert (late_after, down_after) == (518400, 1036800)
    worker_heartbeat_record(hostname="worker-a")
    ttl = cache.ttl(WORKER_HEARTBEAT_CACHE_KEY)
    assert ttl > down_after, ttl  # was 86400: "never" a day after a healthy beat
    assert ttl <= down_after + 24 * 3600


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_the_default_schedule_still_keeps_a_heartbeat_about_a_day():
    _retime(10, IntervalSchedule.SECONDS)
    worker_heartbeat_record(hostname="worker-a")
    ttl = cache.ttl(WORKER_HEARTBEAT_CACHE_KEY)
    assert 24 * 3600 <= ttl <= 24 * 3600 + 60, ttl
    assert core_selectors.probe_worker()["state"] == "ok"
