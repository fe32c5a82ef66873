"""Sampled series (host figures, inference tokens/s) as the dashboard reads them, on real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import services
from apps.metrics.models import MetricPoint

pytestmark = pytest.mark.django_db


def test_a_non_finite_sample_is_not_stored_and_the_series_still_answers(staff_api):
    """A tokens/s over a zero-length batch is inf, a failed reading NaN: stored, the series API answered 500
    (strict JSON has no NaN) and a downsampled hour summed with it was NaN for good."""
    at = timezone.now() - timedelta(minutes=2)
    services.metric_points_record(values={"inference.tokens_per_s": float("inf"), "host.cpu_pct": float("nan")}, at=at)
    services.metric_points_record(values={"inference.tokens_per_s": 120.0}, at=at)

    assert list(MetricPoint.objects.values_list("series", "sum")) == [("inference.tokens_per_s", 120.0)]
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "inference_tokens_per_s", "step": 60})
    assert response.status_code == 200
    assert [value for _, value in response.json()["points"] if value is not None] == [120.0]


def test_a_nan_stored_before_samples_were_checked_reads_as_no_value(staff_api):
    at = timezone.now() - timedelta(minutes=2)
    MetricPoint.objects.create(series="host.disk_pct", at=at, sum=float("nan"), count=1, min=0, max=0)
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "disk_pct", "step": 60})
    assert response.status_code == 200
    assert all(value is None for _, value in response.json()["points"])
