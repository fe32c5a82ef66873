"""A stored series (host figures, tokens/s, cache reads, load failures) whose points were folded per minute
(past 48 h) or per hour (past 30 days), asked for from a `start` off that grain: each point is stamped with the
start of the minute (hour) it covers, so from M+30 s the point of M+1 min was shown under the label M+30 s (as
request series were before 8d3a788). The window now begins on the grain of the points actually stored: raw
points of any age are instants and keep the start as asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import MetricPoint

pytestmark = pytest.mark.django_db


def _point(series: str, at: datetime, value: float, resolution: str) -> MetricPoint:
    return MetricPoint(series=series, resolution=resolution, at=at, sum=value, count=1, min=value, max=value)


def _series(api, metric: str, start: datetime, end: datetime, step: int):
    return api.get("/api/v1/metrics/series/", {
        "metric": metric, "step": step, "start": start.isoformat(), "end": end.isoformat(),
    })  # fmt: skip


def _points(response) -> list[tuple[datetime, float | None]]:
    assert response.status_code == 200, response.content
    return [(datetime.fromisoformat(at), value) for at, value in response.json()["points"]]


@pytest.mark.parametrize("offset", [timedelta(seconds=30), timedelta(microseconds=1)])
def test_a_minute_point_is_labelled_with_its_minute(staff_api, offset):
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    series = "inference.tokens_per_s"
    MetricPoint.objects.bulk_create([_point(series, minute, 10.0, "1m"),
                                     _point(series, minute + timedelta(minutes=1), 20.0, "1m")])  # fmt: skip
    response = _series(staff_api, "inference_tokens_per_s", minute + offset, minute + timedelta(minutes=3), 60)
    assert _points(response) == [(minute + timedelta(minutes=1), 20.0), (minute + timedelta(minutes=2), None)]


def test_an_hour_point_is_labelled_with_its_hour(staff_api):
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    MetricPoint.objects.bulk_create([_point("host.cpu_pct", hour, 40.0, "1h"),
                                     _point("host.cpu_pct", hour + timedelta(hours=1), 60.0, "1h")])  # fmt: skip
    response = _series(staff_api, "cpu_pct", hour + timedelta(minutes=30), hour + timedelta(hours=3), 3600)
    assert _points(response) == [(hour + timedelta(hours=1), 60.0), (hour + timedelta(hours=2), None)]


def test_a_counter_folded_per_minute_is_labelled_with_its_minute(staff_api):
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    MetricPoint.objects.bulk_create([_point("inference.load_failures.minilm.fp32", minute, 1.0, "1m"),
                                     _point("inference.load_failures.minilm.fp32", minute + timedelta(minutes=1),
                                            2.0, "1m")])  # fmt: skip
    response = _series(staff_api, "inference_load_failures", minute + timedelta(seconds=30),
                       minute + timedelta(minutes=2), 60)  # fmt: skip
    assert _points(response) == [(minute + timedelta(minutes=1), 2.0)]


def test_raw_points_of_any_age_keep_the_start_asked_for(staff_api):
    at = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(days=3, seconds=-20)
    MetricPoint.objects.bulk_create([_point("inference.tokens_per_s", at, 10.0, "raw")])
    response = _series(staff_api, "inference_tokens_per_s", at - timedelta(seconds=10), at + timedelta(seconds=50), 60)
    assert _points(response) == [(at - timedelta(seconds=10), 10.0)]


def test_a_window_inside_one_stored_minute_is_a_400_on_start(staff_api):
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    MetricPoint.objects.bulk_create([_point("inference.tokens_per_s", minute, 10.0, "1m")])
    response = _series(staff_api, "inference_tokens_per_s", minute + timedelta(seconds=10),
                       minute + timedelta(seconds=50), 10)  # fmt: skip
    assert response.status_code == 400 and "start" in response.json()["errors"]
