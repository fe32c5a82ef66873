"""A year's p95 series, in steps of whole days, reads the hourly rows past 30 days merged per (route, status
class, UTC day) from the cache: it decoded every hourly row of the year (80,400 for 10 route keys: 8.3 s a
chart). The points are the same as each step's own window read row by row (real PostgreSQL and Redis)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hdrh.histogram import HdrHistogram

from apps.metrics import selectors
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram

pytestmark = pytest.mark.django_db

ROUTES = ("api/v1/day-merge-a/<id>/", "api/v1/day-merge-b/<id>/")
DAYS = 4


def _hourly_rows(first_day) -> None:
    rng = random.Random(11)  # noqa: S311 - test data
    rows = []
    for hour in range(DAYS * 24):
        for route in ROUTES:
            histogram = new_histogram()
            count = rng.randint(5, 40)
            for _ in range(count):
                histogram.record_value(rng.randint(2_000, 900_000))
            rows.append(RequestRollup(resolution="1h", minute=first_day + timedelta(hours=hour), route=route,
                                      method="GET", status_class="2xx", client="app", count=count,
                                      errors=rng.randint(0, 2), histogram=histogram.encode()))  # fmt: skip
    RequestRollup.objects.bulk_create(rows)


def _utc_day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def decodes(monkeypatch):
    """How many stored histograms are decoded (each row read one by one is one; each cached merge one)."""
    calls = []
    original = HdrHistogram.decode

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(HdrHistogram, "decode", staticmethod(counting))
    return calls


@pytest.mark.parametrize("metric", ["p95_ms", "p50_ms"])
def test_a_years_daily_p95_reads_day_merges_with_each_days_own_figures(metric, decodes):
    first_day = _utc_day(timezone.now() - timedelta(days=60))
    _hourly_rows(first_day)
    since, until = first_day - timedelta(days=1), first_day + timedelta(days=DAYS + 1)  # a day without data each side
    read = lambda: selectors.time_series(metric=metric, since=since, until=until, step_seconds=86_400)  # noqa: E731
    first = read()
    decodes.clear()
    second = read()
    # The second read decodes one cached merge per (route, day), not the 96 hourly rows of each route.
    assert len(decodes) == len(ROUTES) * DAYS
    assert first == second
    # The oracle: each day's window read row by row (route_latency has no day merges).
    expected = []
    for day in range(DAYS + 2):
        start = since + timedelta(days=day)
        value = selectors.route_latency(since=start, until=start + timedelta(days=1))[metric]
        expected.append((start, None if value is None else round(value, 3)))
    assert second == expected
    assert [value is None for _, value in second] == [True, *[False] * DAYS, True]


def test_a_late_hourly_row_for_a_merged_day_is_read(decodes):
    first_day = _utc_day(timezone.now() - timedelta(days=60))
    _hourly_rows(first_day)
    since, until = first_day, first_day + timedelta(days=DAYS)
    selectors.time_series(metric="p99_ms", since=since, until=until, step_seconds=86_400)
    histogram = new_histogram()
    histogram.record_value(60_000_000, 1000)  # a minute-long hour, downsampled late into the first day
    RequestRollup.objects.create(resolution="1h", minute=first_day + timedelta(hours=5), route=ROUTES[0],
                                 method="POST", status_class="2xx", client="app", count=1000,
                                 histogram=histogram.encode())  # fmt: skip
    points = selectors.time_series(metric="p99_ms", since=since, until=until, step_seconds=86_400)
    assert points[0][1] == pytest.approx(60_000, rel=0.01)
    assert points[1][1] < 1_000
