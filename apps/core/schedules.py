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
    Gaps are between the real run instants in UTC: a daily run waits 25 h across a fall-back night, and an hourly
    one 2 h there (01:00 runs once, at its first occurrence, then 02:00 an hour after the second). A day the
    clocks keep has its wall-clock gaps; a day they change on is walked run by run (run_instants_on)."""
    minutes = sorted({hour * 60 + minute for hour in cron.hour for minute in cron.minute})
    if not minutes:
        return None
    wall_longest = max((later - earlier for earlier, later in itertools.pairwise(minutes)), default=0) * 60.0
    first, last = divmod(minutes[0], 60), divmod(minutes[-1], 60)
    day = start or datetime.now(tz).date()
    longest = 0.0
    runs_on = 0
    previous_run: datetime | None = None
    for _ in range(CRONTAB_GAP_HORIZON_DAYS):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (day.weekday() + 1) % 7 in cron.day_of_week  # celery: 0 is Sunday
        ):
            runs_on += 1
            if _clocks_change_on(day, tz):
                runs = run_instants_on(day, minutes, tz)
                longest = max(
                    [longest, *((later - earlier).total_seconds() for earlier, later in itertools.pairwise(runs))]
                )
            else:  # one offset all day: the wall clock's gaps are the real ones
                runs = [_instant(day, first, tz), _instant(day, last, tz)]
                longest = max(longest, wall_longest)
            if previous_run is not None:
                longest = max(longest, (runs[0] - previous_run).total_seconds())
            previous_run = runs[-1]
        day += timedelta(days=1)
    if runs_on < 2:
        return None
    return timedelta(seconds=longest)


def _instant(day: date, hour_minute: tuple[int, int], tz: tzinfo) -> datetime:
    """The UTC instant of a wall-clock run: a time the clocks go back over is its first occurrence (fold=0), one
    they skip is read by the offset before the change (02:30 at a spring-forward is 03:30), as celery runs it."""
    return datetime.combine(day, time(*hour_minute), tz).astimezone(UTC)


def _clocks_change_on(day: date, tz: tzinfo) -> bool:
    """Whether `tz`'s UTC offset at the end of `day` differs from its start (a DST change, or a zone's own)."""
    midnight = datetime.combine(day, time(0), tz)
    return midnight.utcoffset() != datetime.combine(day + timedelta(days=1), time(0), tz).utcoffset()


def run_instants_on(day: date, minutes: list[int], tz: tzinfo) -> list[datetime]:
    """The UTC instants of a crontab's runs on `day` (its run minutes of the day, sorted), one per instant: on a
    spring-forward day 02:30 and 03:30 are both 03:30 EDT, run once."""
    return sorted({_instant(day, divmod(minute, 60), tz) for minute in minutes})
