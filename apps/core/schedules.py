"""Scheduled tasks sent twice: beat may run twice for a while (an evicted pod terminating beside its
replacement), and both send every schedule. What a task's service needs to do its scheduled work once."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db import connection


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


# How far ahead a crontab's run times are walked for its longest gap: a crontab of 29 February fires every four
# years, eight across a century's skipped leap day.
CRONTAB_GAP_HORIZON_DAYS = 8 * 366 + 1


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


def gap_and_crontab(row) -> tuple[timedelta | None, object | None]:
    """(the longest wait between two runs of a PeriodicTask `row` (its interval and crontab selected with it), as
    an admin left it: an interval's period or a crontab's longest gap, crontab_longest_gap; celery's crontab when
    the schedule is one, else None), or (None, None) for a solar or clocked schedule. schedule_interval (a
    half-interval dedup) keeps to intervals, as a crontab's weekend gap would skip its runs. A watcher of a
    crontab's runs asks it when each run was due (crontab_runs_after): its longest gap alone says a weekday
    heartbeat is on time a week after the worker died."""
    if row.interval is not None:
        try:
            return timedelta(**{row.interval.period: row.interval.every}), None
        except TypeError:  # a period timedelta does not know: nothing to go by
            return None, None
    if row.crontab is not None:
        cron = row.crontab.schedule
        return crontab_longest_gap(cron, row.crontab.timezone), cron
    return None, None


def crontab_runs_after(cron, after: datetime, count: int) -> list[datetime]:
    """The first `count` run times of celery's `cron` after `after` (aware), in UTC, by celery's own next-run
    arithmetic (remaining_delta, in the crontab's timezone: a daily 03:00 in Berlin is 25 h after the last one
    across the night clocks go back). Raises what celery raises for a crontab that never runs."""
    runs: list[datetime] = []
    previous = after.astimezone(UTC)
    for _ in range(count):
        start, delta, _now = cron.remaining_delta(previous)
        run = (start + delta).astimezone(UTC)
        if run <= previous:  # a wall-clock run in a repeated hour read as its first occurrence: take the second
            run = (start + delta).replace(fold=1).astimezone(UTC)
        if run <= previous:  # still not ahead (a skipped hour): go on from the next minute
            start, delta, _now = cron.remaining_delta(previous + timedelta(minutes=1))
            run = max((start + delta).astimezone(UTC), previous + timedelta(minutes=1))
        runs.append(run)
        previous = run
    return runs


def crontab_longest_gap(cron, tz: tzinfo, *, start: date | None = None) -> timedelta | None:
    """The longest wait between two consecutive run times of celery's `cron` (its expanded minute, hour, day
    and month sets; a day must match day of month, month and day of week, as celery reads them) in `tz`, over
    CRONTAB_GAP_HORIZON_DAYS from `start` (today there), or None if it runs on fewer than two days there. A
    crontab's next two run times say nothing of its weekend or night: `0 9-17 * * 1-5` waits 64 h from Friday.
    Gaps across days are by the UTC instants (a daily run waits 25 h across a fall-back night); gaps inside a
    day by the wall clock."""
    minutes = sorted({hour * 60 + minute for hour in cron.hour for minute in cron.minute})
    if not minutes:
        return None
    longest = max((later - earlier for earlier, later in itertools.pairwise(minutes)), default=0) * 60.0
    first, last = divmod(minutes[0], 60), divmod(minutes[-1], 60)
    day = start or datetime.now(tz).date()
    runs_on = 0
    previous_last_run: datetime | None = None
    for _ in range(CRONTAB_GAP_HORIZON_DAYS):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (day.weekday() + 1) % 7 in cron.day_of_week  # celery: 0 is Sunday
        ):
            runs_on += 1
            first_run = datetime.combine(day, time(*first), tz).astimezone(UTC)
            if previous_last_run is not None:
                longest = max(longest, (first_run - previous_last_run).total_seconds())
            previous_last_run = datetime.combine(day, time(*last), tz).astimezone(UTC)
        day += timedelta(days=1)
    if runs_on < 2:
        return None
    return timedelta(seconds=longest)
