"""The heartbeat's late/down thresholds followed the "Worker heartbeat" schedule's interval only when it was an
interval: the admin's retime form also takes a crontab, and for one the thresholds fell back to the 10 s
settings. At `*/5 * * * *` (late 30 s, down 60 s) a healthy heartbeat 81 s old read "down", /readyz an error. A
crontab's interval is now its longest gap between two run times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, heartbeat_thresholds, probe_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean():
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _retime_crontab(spec: str, timezone: str = "UTC") -> None:
    minute, hour, day_of_month, month_of_year, day_of_week = spec.split()
    crontab = CrontabSchedule.objects.create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=timezone,
    )
    task, _ = PeriodicTask.objects.get_or_create(
        name="Worker heartbeat", defaults={"task": "core.heartbeat", "crontab": crontab, "queue": "default"}
    )
    task.interval, task.crontab = None, crontab
    task.save()


def _beat_aged(seconds: float) -> datetime:
    """A heartbeat stamped just after a */5 run (as beat sends it), and the time `seconds` later."""
    at = datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": at.isoformat(), "hostname": "worker-a"}, timeout=3600)
    return at + timedelta(seconds=seconds)


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_heartbeat_on_a_five_minute_crontab_is_not_down_between_beats():
    _retime_crontab("*/5 * * * *")
    # the most a heartbeat can wait: a gap and the grace (late), three runs due and the grace (down); was (30, 60)
    assert heartbeat_thresholds() == (330, 930)
    worker = probe_worker(now=_beat_aged(81))
    assert worker["state"] == "ok", worker  # was "down"
    status, detail = core_selectors._probe_worker(_beat_aged(81))
    assert status == core_selectors.OK, detail  # was error: "last heartbeat 81.0s ago"
    assert probe_worker(now=_beat_aged(901))["state"] == "late"
    assert probe_worker(now=_beat_aged(1801))["state"] == "down"


@pytest.mark.parametrize(
    ("spec", "timezone", "gap"),
    [
        ("* * * * *", "UTC", timedelta(minutes=1)),
        ("0 9-17 * * 1-5", "UTC", timedelta(hours=64)),  # Friday 17:00 to Monday 09:00, not the next hour
        ("0 3 * * *", "Europe/Berlin", timedelta(hours=25)),  # across the night clocks go back
        ("0 0 1 * *", "UTC", timedelta(days=31)),
    ],
)
@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_crontabs_interval_is_its_longest_gap(spec, timezone, gap):
    _retime_crontab(spec, timezone)
    assert core_selectors.heartbeat_interval_seconds() == gap.total_seconds()  # was 10: the settings


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_the_resources_monitor_still_reads_no_interval_from_a_crontab():
    """schedule_interval (the monitor's half-interval dedup) is unchanged: a weekend gap would skip its runs."""
    from apps.core.schedules import schedule_interval

    _retime_crontab("0 9-17 * * 1-5")
    assert schedule_interval("Worker heartbeat") is None


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_crontab_is_read_once_per_process_while_fresh(django_assert_num_queries):
    _retime_crontab("*/5 * * * *")
    with django_assert_num_queries(1):
        for _ in range(5):
            assert probe_worker(now=_beat_aged(81))["state"] == "ok"
