"""Long-window percentiles from cached hourly merges: the same figures as merging every minute row."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from apps.metrics import hour_merges, selectors, services
from apps.metrics.models import AlertRule, RequestRollup
from apps.metrics.recorder import Series, new_histogram
from apps.services.models import Service

pytestmark = pytest.mark.django_db

ROUTES = ("api/v1/patients/<int:patient_id>/", "fhir/Patient/<id>")


def _histogram(rng: random.Random, slow: bool):
    histogram = new_histogram()
    for _ in range(rng.randint(1, 6)):
        histogram.record_value(rng.randint(2_000, 3_000_000 if slow else 400_000), rng.randint(1, 40))
    return histogram


def _rollups(now: datetime, *, days: int = 8, seed: int = 7) -> None:
    """Two routes' minute rollups, on about one minute in sixteen, up to the minute in progress: several status
    classes and clients a minute, so an hour's merge spans many rows and the limiter's 429s can be left out."""
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not a secret
    start = now.replace(second=0, microsecond=0) - timedelta(days=days)
    rows = []
    for m in range(days * 24 * 60 + 1):
        minute = start + timedelta(minutes=m)
        for route in ROUTES:
            if rng.random() > 0.06:
                continue
            for status_class, client in rng.sample(
                [("2xx", "ward"), ("2xx", "lab"), ("5xx", "ward"), ("429", "lab")], 2
            ):
                histogram = _histogram(rng, slow=status_class == "5xx")
                count = histogram.get_total_count()
                rows.append(RequestRollup(minute=minute, route=route, method="GET", status_class=status_class,
                                          client=client, count=count, errors=count if status_class == "5xx" else 0,
                                          histogram=histogram.encode()))  # fmt: skip
    # Hourly rows: past the minute rows' 30 days as retention leaves them, and (the readers never filter by
    # resolution) one inside a merged hour, beside its minute rows: read row by row, counted by both paths alike.
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for days_back, route in ((20, ROUTES[1]), (12, ROUTES[1]), (3, ROUTES[0])):
        histogram = _histogram(rng, slow=True)
        count = histogram.get_total_count()
        rows.append(RequestRollup(resolution=RequestRollup.Resolution.HOUR, minute=hour - timedelta(days=days_back),
                                  route=route, method="GET", status_class="5xx", client="ward", count=count,
                                  errors=count, histogram=histogram.encode()))  # fmt: skip
    RequestRollup.objects.bulk_create(rows, batch_size=2000)


def _every_row(monkeypatch):
    """The read as it was: every row in the window decoded and merged."""
    monkeypatch.setattr(hour_merges, "window_histogram", lambda rows, **_: hour_merges.rows_histogram(rows))


def _figures(services_: list[Service], rules: list[AlertRule], now: datetime) -> dict:
    return {
        "slo": [selectors.slo_status(service, now=now) for service in services_],
        "rules": [selectors.alert_rule_value(rule, now=now) for rule in rules],
        "past_day": selectors.route_latency(since=now - timedelta(days=3, minutes=17), until=now - timedelta(days=2)),
        "all": selectors.route_latency(route_prefixes=["fhir/"], since=now - timedelta(days=30)),
    }


@pytest.fixture
def week(monkeypatch):
    now = timezone.now()
    # One clock for the whole test: which hours have settled (hour_merges.SETTLED_AFTER) is read from it, and
    # the real one passing HH:02 between two reads (a test begun at HH:01 in a slow full run) settled another
    # hour, so the second read merged that hour from its rows instead of reading every hour from the cache.
    monkeypatch.setattr(timezone, "now", lambda: now)
    _rollups(now)
    patients = Service.objects.create(name="Patients", slug="patients", route_prefix="api/v1/patients/")
    fhir = Service.objects.create(name="FHIR", slug="fhir", route_prefix="fhir/")
    rules = [
        AlertRule.objects.create(name="p95 7d", metric="p95_ms", threshold=500, window_minutes=7 * 24 * 60,
                                 service=patients, min_requests=1),
        AlertRule.objects.create(name="errors 3d", metric="error_rate_pct", threshold=5, window_minutes=3 * 24 * 60,
                                 service=fhir, min_requests=1),
        AlertRule.objects.create(name="p95 all 26h", metric="p95_ms", threshold=500, window_minutes=26 * 60 + 7,
                                 min_requests=1),
    ]  # fmt: skip
    return now, [patients, fhir], rules


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])  # hours are UTC's, whatever the clock's offset
def test_slo_and_alert_windows_read_the_same_figures_from_hourly_merges_as_from_every_row(
    week, monkeypatch, settings, zone
):
    settings.TIME_ZONE = zone
    now, services_, rules = week
    now = now.astimezone(ZoneInfo(zone))
    merged_groups = []
    merge = hour_merges._merge_groups
    monkeypatch.setattr(hour_merges, "_merge_groups", lambda rows, groups: (merged_groups.append(len(groups)),
                                                                            merge(rows, groups))[1])  # fmt: skip

    cold = _figures(services_, rules, now)
    assert sum(merged_groups) > 300  # a week of hours, per route and status class, merged from the rows
    merged_groups.clear()
    warm = _figures(services_, rules, now)
    assert merged_groups == []  # every whole hour came from the cache
    with monkeypatch.context() as old:
        _every_row(old)
        reference = _figures(services_, rules, now)
    assert cold == reference and warm == reference
    assert reference["slo"][0]["windows"]["7d"]["count"] > reference["slo"][0]["windows"]["24h"]["count"] > 0
    assert all(value is not None for value in reference["rules"])


def test_a_late_row_for_a_merged_hour_is_read(week, monkeypatch):
    """A process flushing late (its backlog after a database outage) adds to an hour already merged: a row of a
    new key, and requests merged into an existing row. Both are in the next read, as they are row by row."""
    now, services_, rules = week
    _figures(services_, rules, now)  # the hours are merged and cached
    row = RequestRollup.objects.filter(route=ROUTES[0], minute__lt=now - timedelta(days=2)).exclude(status_class="429")
    row = row.order_by("-minute").first()
    hour = row.minute.astimezone(UTC).replace(minute=0)
    slow = Series(count=50, errors=0, total_us=50 * 9_000_000)
    slow.histogram.record_value(9_000_000, 50)
    late = Series(count=3, errors=3, total_us=3 * 8_000_000)
    late.histogram.record_value(8_000_000, 3)
    services.rollups_merge({
        (int(row.minute.timestamp()), row.route, row.method, row.status_class, row.client): slow,
        (int((hour + timedelta(minutes=59)).timestamp()), ROUTES[0], "POST", "5xx", "late-worker"): late,
    })  # fmt: skip
    merged_groups = []
    merge = hour_merges._merge_groups
    monkeypatch.setattr(hour_merges, "_merge_groups", lambda rows, groups: (merged_groups.append(groups),
                                                                            merge(rows, groups))[1])  # fmt: skip

    after = _figures(services_, rules, now)
    with monkeypatch.context() as old:
        _every_row(old)
        reference = _figures(services_, rules, now)
    assert after == reference
    # Only the hours the late rows changed were merged again, once per read that covers them.
    assert {group for groups in merged_groups for group in groups} == {
        (ROUTES[0], row.status_class, hour),
        (ROUTES[0], "5xx", hour),
    }
    week_of_patients = reference["slo"][0]["windows"]["7d"]
    assert week_of_patients["max_ms"] == pytest.approx(9_000, rel=0.01)  # the late slow requests are in


def test_an_unreachable_cache_reads_every_row_with_the_same_figures(week, monkeypatch):
    now, services_, rules = week
    with monkeypatch.context() as old:
        _every_row(old)
        reference = _figures(services_, rules, now)

    calls = []

    class Unreachable:
        """Redis away: each call waits out the socket timeout (0.5 s) before it raises."""

        def get_many(self, *args, **kwargs):
            calls.append("get_many")
            raise ConnectionError("redis away")

        def set_many(self, *args, **kwargs):
            calls.append("set_many")
            raise ConnectionError("redis away")

    monkeypatch.setattr(hour_merges, "cache", Unreachable())
    assert _figures(services_, rules, now) == reference
    assert "get_many" in calls and "set_many" not in calls  # a read that found it away does not wait twice


def test_the_seven_day_latency_chart_reads_hourly_merges_with_the_same_points(week, monkeypatch):
    """The dashboard's 7-day chart (hour steps from the hour, up to now) decoded every minute row in the week
    for each of its percentile metrics: seconds per chart. Its settled hours now come from the cached merges,
    the same points as row by row."""
    now, _, _ = week
    since = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=7) + timedelta(hours=1)

    def chart() -> dict:
        return {
            metric: selectors.time_series(
                metric=metric, since=since, until=now, step_seconds=3600, route_prefixes=["api/v1/patients/"]
            )
            for metric in ("p50_ms", "p95_ms", "p99_ms", "requests")
        }

    merged_groups = []
    merge = hour_merges._merge_groups
    monkeypatch.setattr(hour_merges, "_merge_groups", lambda rows, groups: (merged_groups.append(len(groups)),
                                                                            merge(rows, groups))[1])  # fmt: skip
    cold = chart()
    assert sum(merged_groups) > 100  # the week's hours of the route, per status class, merged once
    merged_groups.clear()
    warm = chart()
    assert merged_groups == []
    with monkeypatch.context() as old:
        old.setattr(hour_merges, "settled_hours", lambda since, until: None)  # every row, as before
        reference = chart()
    assert cold == reference and warm == reference
    assert len(reference["p95_ms"]) == 7 * 24 and sum(v is not None for _, v in reference["p95_ms"]) > 100

    # Steps that cut hours (the 24-hour chart's 15 minutes) or a start off the hour read every row, as before.
    merged_groups.clear()
    quarter = selectors.time_series(metric="p95_ms", since=since, until=now, step_seconds=900)
    off_hour = selectors.time_series(metric="p95_ms", since=since + timedelta(minutes=7), until=now, step_seconds=3600)
    assert merged_groups == [] and any(v is not None for _, v in quarter) and any(v is not None for _, v in off_hour)
