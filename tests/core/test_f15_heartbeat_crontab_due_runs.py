"""A crontab heartbeat was judged by the crontab's longest gap between two runs: at `0 9-17 * * 1-5` (64 h over
the weekend) "late" came after 8 days and "down" after 16, so a heartbeat stamped 7 days ago read
{'alive': True, 'state': 'ok'} on /readyz and the Overview. It is now judged by the runs due after it: late once
the first is overdue by the grace (three settings intervals, 30 s here), down once the third is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, probe_worker
from apps.core.services import worker_heartbeat_ttl_seconds

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("_clean"),
]
SETTINGS = {"WORKER_HEARTBEAT_INTERVAL_SECONDS": 10, "WORKER_HEARTBEAT_MAX_AGE_SECONDS": 60}


@pytest.fixture
def _clean():
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    core_selectors.forget_heartbeat_interval()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _retime(*, crontab: str | None = None, timezone: str = "UTC", every: int | None = None) -> None:
    schedule = {"interval": None, "crontab": None}
    if crontab:
        minute, hour, day_of_month, month_of_year, day_of_week = crontab.split()
        schedule["crontab"] = CrontabSchedule.objects.create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=timezone,
        )  # fmt: skip
    else:
        schedule["interval"], _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    task, _ = PeriodicTask.objects.get_or_create(
        name="Worker heartbeat", defaults={"task": "core.heartbeat", "queue": "default", **schedule}
    )
    task.interval, task.crontab = schedule["interval"], schedule["crontab"]
    task.save()


def _state(stamped: datetime, now: datetime) -> dict:
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": stamped.isoformat(), "hostname": "worker-a"}, timeout=3600)
    return probe_worker(now=now)


FRIDAY_BEAT = datetime(2026, 12, 4, 17, 0, 2, tzinfo=UTC)  # the week's last run of 0 9-17 * * 1-5


@override_settings(**SETTINGS)
def test_a_weekday_heartbeat_seven_days_old_is_down():
    _retime(crontab="0 9-17 * * 1-5")
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # Monday noon
    worker = _state(now - timedelta(days=7), now)
    assert worker["state"] == "down" and worker["alive"] is False, worker  # was ok, alive
    assert core_selectors._probe_worker(now)[0] == core_selectors.ERROR  # /readyz


@override_settings(**SETTINGS)
@pytest.mark.parametrize(
    ("now", "state"),
    [
        (datetime(2026, 12, 6, 12, 0, tzinfo=UTC), "ok"),  # Sunday: no run was due since
        (datetime(2026, 12, 7, 9, 0, 25, tzinfo=UTC), "ok"),  # Monday's first run, within the grace
        (datetime(2026, 12, 7, 9, 5, tzinfo=UTC), "late"),  # was ok (late after 8 days)
        (datetime(2026, 12, 7, 10, 50, tzinfo=UTC), "late"),
        (datetime(2026, 12, 7, 11, 1, tzinfo=UTC), "down"),  # three runs due, none sent; was ok
    ],
)
def test_a_friday_evening_heartbeat_is_judged_by_the_runs_due_since(now, state):
    _retime(crontab="0 9-17 * * 1-5")
    worker = _state(FRIDAY_BEAT, now)
    assert worker["state"] == state, worker
    assert worker["max_age_seconds"] == (datetime(2026, 12, 7, 11, 0, 30, tzinfo=UTC) - FRIDAY_BEAT).total_seconds()


@override_settings(**SETTINGS)
@pytest.mark.parametrize(
    ("stamped", "ok_at", "late_at"),
    [
        # Berlin falls back on 25 October 2026: Saturday's 03:00 CEST run to Sunday's 03:00 CET is 25 h
        (datetime(2026, 10, 24, 1, 0, 3, tzinfo=UTC), datetime(2026, 10, 25, 1, 59, tzinfo=UTC),
         datetime(2026, 10, 25, 2, 1, tzinfo=UTC)),
        # and springs forward on 29 March 2026: 23 h
        (datetime(2026, 3, 28, 2, 0, 3, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, 20, tzinfo=UTC),
         datetime(2026, 3, 29, 1, 1, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_a_daily_heartbeat_across_a_dst_change_is_due_by_the_wall_clock(stamped, ok_at, late_at):
    _retime(crontab="0 3 * * *", timezone="Europe/Berlin")
    assert _state(stamped, ok_at)["state"] == "ok"
    assert _state(stamped, late_at)["state"] == "late"


@override_settings(**SETTINGS)
def test_a_five_minute_crontab_keeps_its_answers():
    _retime(crontab="*/5 * * * *")
    stamped = datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC)
    for age, state in ((81, "ok"), (299, "ok"), (901, "late"), (929, "late"), (1801, "down")):
        assert _state(stamped, stamped + timedelta(seconds=age))["state"] == state, age


@override_settings(**SETTINGS)
def test_interval_schedules_keep_three_intervals_and_the_scaled_max_age():
    _retime(every=120)
    stamped = datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC)
    for age, state in ((81, "ok"), (359, "ok"), (361, "late"), (719, "late"), (721, "down")):
        assert _state(stamped, stamped + timedelta(seconds=age))["state"] == state, age
    assert probe_worker(now=stamped)["max_age_seconds"] == 720


@override_settings(**SETTINGS)
def test_the_heartbeat_outlives_a_weekday_crontabs_latest_down(django_assert_num_queries):
    _retime(crontab="0 9-17 * * 1-5")
    # the latest a heartbeat can read down: three of the longest gaps and the grace; kept a day past it
    assert worker_heartbeat_ttl_seconds() == 3 * 64 * 3600 + 30 + 24 * 3600
    with django_assert_num_queries(0):  # the schedule is read once per 30 s, not per judgement
        for hour in range(9, 18):
            _state(FRIDAY_BEAT, datetime(2026, 12, 7, hour, 5, tzinfo=UTC))
