"""The hourly retention (metrics.retention) folds a backlog in batches and finds an idle table idle from an index.

It ran a SELECT and an INSERT or UPDATE per bucket (3,379 statements and 10 s for an hour's backlog) and three
sequential scans of every metric point each hour with nothing to fold. The folded rows must stay exactly what
they were: sums and counts added, min and max kept, hourly histograms merged from the minutes' (a reference
fold here, which the per-bucket code passed too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.metrics import services
from apps.metrics.models import MetricPoint, RequestRollup
from apps.metrics.recorder import new_histogram, percentile_values

pytestmark = pytest.mark.django_db

SERIES = ("retention.a", "retention.b")
ROUTES = ("retention/x/", "retention/y/")


def _minute(at: datetime) -> datetime:
    return datetime.fromtimestamp(int(at.timestamp()) // 60 * 60, UTC)


def _hour(at: datetime) -> datetime:
    return datetime.fromtimestamp(int(at.timestamp()) // 3600 * 3600, UTC)


def _histogram(*latencies_ms: int):
    histogram = new_histogram()
    for ms in latencies_ms:
        histogram.record_value(ms * 1000)
    return histogram


def _rollup(resolution: str, minute: datetime, route: str, latencies_ms: tuple[int, ...], errors: int):
    histogram = _histogram(*latencies_ms)
    row = RequestRollup(resolution=resolution, minute=minute, route=route, method="GET", status_class="2xx",
                        client="app", count=len(latencies_ms), errors=errors,
                        total_ms=float(sum(latencies_ms)))  # fmt: skip
    services._summarize(row, histogram)
    return row


def _backlog(*, raw_minutes: int, hours: int) -> None:
    """Raw points over `raw_minutes` minutes 3 days back, minute points over `hours` hours and minute rollups
    over `hours` hours 40 days back, and in each resolution a bucket written already (a late point's)."""
    raw_start = _minute(timezone.now() - timedelta(days=3))
    old_start = _hour(timezone.now() - timedelta(days=40))
    points = []
    for series_index, series in enumerate(SERIES):
        for n in range(raw_minutes * 2):  # two samples a minute; quarters, so any order of addition is exact
            value = ((n * 3 + series_index) % 8) * 0.25
            points.append(MetricPoint(series=series, at=raw_start + timedelta(seconds=30 * n), sum=value, count=1,
                                      min=value, max=value))  # fmt: skip
        for n in range(hours * 3):  # three minute points an hour
            value = ((n * 5 + series_index) % 16) * 0.5
            points.append(MetricPoint(series=series, resolution="1m", at=old_start + timedelta(minutes=20 * n),
                                      sum=value * 2, count=2, min=value - 1, max=value + 1))  # fmt: skip
    points.append(MetricPoint(series=SERIES[0], resolution="1m", at=raw_start, sum=7.5, count=3, min=-4, max=9))
    points.append(MetricPoint(series=SERIES[1], resolution="1h", at=old_start, sum=1.25, count=5, min=0.5, max=0.5))
    MetricPoint.objects.bulk_create(points)
    rollups = [_rollup("1h", old_start, ROUTES[0], (5, 500), errors=1)]
    for hour in range(hours):
        for route_index, route in enumerate(ROUTES):
            for minute in (0, 30):
                latencies = (10 + hour, 20 * (route_index + 1), 300 + minute)
                rollups.append(_rollup("1m", old_start + timedelta(hours=hour, minutes=minute), route, latencies,
                                       errors=(hour + minute) % 2))  # fmt: skip
    RequestRollup.objects.bulk_create(rollups)


def _points() -> dict:
    rows = MetricPoint.objects.filter(series__in=SERIES)
    return {(p.series, p.resolution, p.at): (p.sum, p.count, p.min, p.max) for p in rows}


def _rollups() -> dict:
    rows = RequestRollup.objects.filter(route__in=ROUTES)
    return {(r.resolution, r.minute, r.route): r for r in rows}


def _expected_points(before: dict) -> dict:
    """The reference fold: raw older than 48 h into minutes, minutes older than 30 days into hours."""
    expected: dict = {}
    raw_cutoff = _minute(timezone.now() - timedelta(hours=48))
    minute_cutoff = _hour(timezone.now() - timedelta(days=30))
    for (series, resolution, at), values in sorted(before.items(), key=lambda item: item[0][1] != "raw"):
        if resolution == "raw" and at < raw_cutoff:
            key = (series, "1m", _minute(at))
        elif resolution == "1m" and at < minute_cutoff:
            key = (series, "1h", _hour(at))
        else:
            key = (series, resolution, at)
        if key not in expected:
            expected[key] = values
            continue
        total, count, low, high = expected[key]
        expected[key] = (total + values[0], count + values[1], min(low, values[2]), max(high, values[3]))
    # A raw point folded into a minute that is itself past 30 days would move on next run: none here.
    return expected


def _expected_hours(before: dict) -> dict:
    hours: dict = {}
    for (_, minute, route), row in before.items():
        key = (_hour(minute), route)
        histogram, count, errors, total = hours.get(key, (new_histogram(), 0, 0, 0.0))
        histogram.add(type(histogram).decode(bytes(row.histogram)))
        hours[key] = (histogram, count + row.count, errors + row.errors, total + row.total_ms)
    expected = {}
    for (hour, route), (histogram, count, errors, total) in hours.items():
        values = percentile_values(histogram, (50, 95, 99))
        expected[("1h", hour, route)] = (count, errors, total, histogram.get_max_value() / 1000, values[50] / 1000,
                                         values[95] / 1000, values[99] / 1000, _counts(histogram))  # fmt: skip
    return expected


def _counts(histogram) -> list[int]:
    return list(histogram.counts[: histogram.counts_len])


def _hour_values(row: RequestRollup) -> tuple:
    histogram = type(new_histogram()).decode(bytes(row.histogram))
    return (row.count, row.errors, row.total_ms, row.max_ms, row.p50_ms, row.p95_ms, row.p99_ms, _counts(histogram))


def test_the_folded_rows_are_the_reference_folds():
    _backlog(raw_minutes=30, hours=4)
    points_before, rollups_before = _points(), _rollups()

    services.retention_apply()

    assert _points() == _expected_points(points_before)
    assert {key: _hour_values(row) for key, row in _rollups().items()} == _expected_hours(rollups_before)


def _retention_statements(*, raw_minutes: int, hours: int) -> list[str]:
    _backlog(raw_minutes=raw_minutes, hours=hours)
    with CaptureQueriesContext(connection) as queries:
        folded = services.retention_apply()
    assert folded["points_raw_to_1m"] >= raw_minutes * 2 * len(SERIES)
    assert folded["rollups_1m_to_1h"] == hours * len(ROUTES) * 2
    MetricPoint.objects.filter(series__in=SERIES).delete()
    RequestRollup.objects.filter(route__in=ROUTES).delete()
    return [query["sql"] for query in queries]


def test_a_backlog_costs_the_same_statements_whatever_its_buckets():
    small = _retention_statements(raw_minutes=5, hours=3)
    # 400 minute buckets, 200 hour buckets of points and 200 of rollups: the per-bucket code ran ~1,600 statements
    large = _retention_statements(raw_minutes=200, hours=100)
    if connection.vendor == "postgresql":
        assert len(large) == len(small), (len(small), len(large))
    else:  # SQLite's bulk inserts are split by its limit on parameters (999): a few more, not one per bucket
        assert len(large) < 2 * len(small), (len(small), len(large))
    assert len(large) < 40, large


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test's transaction only: a tiny table is scanned
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_an_idle_retention_asks_the_resolution_index():
    services.metric_points_record(values={"retention.a": 1.0})  # recent: nothing to fold
    with CaptureQueriesContext(connection) as queries:
        services.retention_apply()
    asked = [q["sql"] for q in queries if '"metrics_metricpoint"' in q["sql"] and '"resolution" =' in q["sql"]]
    assert len(asked) == 3, asked  # raw -> 1 minute, 1 minute -> 1 hour, 1 hour dropped
    for sql in asked:
        plan = _plan(sql)
        assert "metricpoint_resolution_at" in plan and "Index Cond" in plan, plan
