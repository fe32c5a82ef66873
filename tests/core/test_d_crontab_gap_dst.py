"""A crontab's longest gap on the nights the clocks change, by the real run instants in UTC.

Before: crontab_longest_gap took the gaps inside a day by the wall clock, so an hourly crontab in
America/New_York read 1 h, though on the night the clocks go back (first Sunday of November) 01:00 runs once (its
first occurrence, 05:00 UTC) and 02:00 EST (07:00 UTC) is next: 2 h. The worker heartbeat's thresholds without a
stamp go by that gap (selectors.heartbeat_thresholds), so a dead worker on such a schedule read down an hour early.
The instants a day the clocks change on is walked by are checked against celery's own next-run arithmetic
(crontab_runs_after), on a fall-back and a spring-forward night (02:30 does not exist; celery runs it at 03:30).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab

from apps.core import selectors as core_selectors
from apps.core.schedules import crontab_longest_gap, crontab_runs_after, run_instants_on
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, heartbeat_thresholds

NEW_YORK = ZoneInfo("America/New_York")
FALL_BACK, SPRING_FORWARD = date(2026, 11, 1), date(2026, 3, 8)


def _cron(tz: ZoneInfo = NEW_YORK, **spec: str) -> TzAwareCrontab:
    return TzAwareCrontab(tz=tz, **spec)


def _celery_runs_on(cron, day: date, tz: ZoneInfo) -> list[datetime]:
    """Celery's run instants on `day` in `tz`, by its next-run arithmetic from just before the day."""
    begin = datetime.combine(day, time(0), tz).astimezone(UTC) - timedelta(seconds=1)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return [run for run in crontab_runs_after(cron, begin, 24 * 60 + 1) if run < end]


def test_an_hourly_crontab_waits_two_hours_across_the_fall_back_night():
    cron = _cron(minute="0")
    runs = _celery_runs_on(cron, FALL_BACK, NEW_YORK)
    longest_real = max(later - earlier for earlier, later in itertools.pairwise(runs))
    assert longest_real == timedelta(hours=2)  # 01:00 EDT (05:00 UTC), then 02:00 EST (07:00 UTC)
    assert crontab_longest_gap(cron, NEW_YORK, start=FALL_BACK) == timedelta(hours=2)  # was 1 h
    assert crontab_longest_gap(cron, NEW_YORK, start=date(2026, 12, 7)) == timedelta(hours=2)  # the next one
    assert crontab_longest_gap(cron, ZoneInfo("UTC"), start=FALL_BACK) == timedelta(hours=1)  # no clock change


@pytest.mark.parametrize("day", [FALL_BACK, SPRING_FORWARD], ids=["fall-back", "spring-forward"])
@pytest.mark.parametrize(
    "spec",
    [
        {"minute": "0"},
        {"minute": "30"},
        {"minute": "*/15"},
        {"minute": "30", "hour": "1-3"},
        {"minute": "30", "hour": "2"},
    ],
    ids=str,
)
def test_the_run_instants_of_a_day_the_clocks_change_are_celerys(day, spec):
    cron = _cron(**spec)
    minutes = sorted({hour * 60 + minute for hour in cron.hour for minute in cron.minute})
    assert run_instants_on(day, minutes, NEW_YORK) == _celery_runs_on(cron, day, NEW_YORK)


def test_the_spring_forward_night_runs_a_skipped_half_past_two_at_half_past_three():
    """02:30 does not exist on 8 March 2026 in New York: celery runs it at 03:30 EDT, once (not twice with the
    03:30 run, and not skipped: a daily 02:30 would wait 48 h)."""
    hourly = _celery_runs_on(_cron(minute="30"), SPRING_FORWARD, NEW_YORK)
    assert [run.astimezone(NEW_YORK).strftime("%H:%M") for run in hourly[:4]] == ["00:30", "01:30", "03:30", "04:30"]
    assert max(later - earlier for earlier, later in itertools.pairwise(hourly)) == timedelta(hours=1)
    nightly = _cron(minute="30", hour="2")  # the seeded "optimize all"
    around = crontab_runs_after(nightly, datetime(2026, 3, 6, 12, tzinfo=UTC), 3)
    assert [b - a for a, b in itertools.pairwise(around)] == [timedelta(hours=24), timedelta(hours=23)]
    assert crontab_longest_gap(nightly, NEW_YORK, start=date(2026, 3, 1)) == timedelta(hours=25)  # fall-back's


@pytest.mark.django_db
@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_heartbeat_on_an_hourly_new_york_crontab_is_not_down_an_hour_early():
    """The thresholds without a stamp: a gap and the grace (late), three gaps and the grace (down)."""
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    crontab = CrontabSchedule.objects.create(minute="0", hour="*", timezone="America/New_York")
    PeriodicTask.objects.update_or_create(name="Worker heartbeat",
                                          defaults={"task": "core.heartbeat", "crontab": crontab, "interval": None,
                                                    "queue": "default"})  # fmt: skip
    try:
        assert heartbeat_thresholds() == (7230, 21630)  # was (3630, 10830)
    finally:
        core_selectors.forget_heartbeat_interval()
