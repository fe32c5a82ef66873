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
    # Hours back: the batcher threads of earlier inference tests commit tokens/s points of their own at their time
    # (a CI run's inference tests ran two minutes before this one, and their points fell in its window).
    at = timezone.now() - timedelta(hours=40)
    services.metric_points_record(values={"inference.tokens_per_s": float("inf"), "host.cpu_pct": float("nan")}, at=at)
    services.metric_points_record(values={"inference.tokens_per_s": 120.0}, at=at)

    # This test's own points: those threads commit on their own connections, which the rollback does not undo.
    assert list(MetricPoint.objects.filter(at=at).values_list("series", "sum")) == [("inference.tokens_per_s", 120.0)]
    window = {"start": (at - timedelta(seconds=30)).isoformat(), "end": (at + timedelta(seconds=30)).isoformat()}
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "inference_tokens_per_s", "step": 60, **window})
    assert response.status_code == 200
    assert [value for _, value in response.json()["points"] if value is not None] == [120.0]


def test_a_nan_stored_before_samples_were_checked_reads_as_no_value(staff_api):
    at = timezone.now() - timedelta(minutes=2)
    MetricPoint.objects.create(series="host.disk_pct", at=at, sum=float("nan"), count=1, min=0, max=0)
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "disk_pct", "step": 60})
    assert response.status_code == 200
    assert all(value is None for _, value in response.json()["points"])


def test_a_host_series_is_the_busiest_hosts_not_a_blend_of_every_pod(staff_api):
    """The monitor records each host's sample into the same `host.memory_pct` series: a worker at 97% of its
    memory limit beside an idle api pod read 63.5% on the dashboard, which the alert (busiest host) and the live
    feed never showed. Each step is the busiest host's mean, as they judge it."""
    from tests.metrics.support import host_sample

    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    for offset, (host, memory) in enumerate((("worker-a", 96.0), ("api-1", 30.0), ("worker-a", 98.0))):
        at = start + timedelta(seconds=10 * offset)
        host_sample(host=host, memory=memory, at=at)
        # as the monitor wrote it, a point per host
        services.metric_points_record(values={"host.memory_pct": memory}, at=at)
    response = staff_api.get(
        "/api/v1/metrics/series/",
        {
            "metric": "memory_pct",
            "step": 60,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=2)).isoformat(),
        },
    )
    assert response.status_code == 200
    assert [value for _, value in response.json()["points"]] == [97.0, None]


def test_a_host_series_older_than_the_monitors_samples_reads_the_stored_series(staff_api):
    """Past the monitor's retention only the series is kept (one figure for every host): shown, not lost."""
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(days=40)
    services.metric_points_record(values={"host.cpu_pct": 40.0}, at=start)
    response = staff_api.get(
        "/api/v1/metrics/series/",
        {
            "metric": "cpu_pct",
            "step": 60,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=1)).isoformat(),
        },
    )
    assert [value for _, value in response.json()["points"]] == [40.0]


def test_downsampling_deletes_only_the_points_it_folded(monkeypatch):
    """A point that lands between the read and the delete (a late sample, a monitor catching up) matched the
    delete's filter and went without being folded: its total was lost for good."""
    old = timezone.now() - timedelta(days=3)
    services.metric_points_record(values={"host.cpu_pct": 40.0}, at=old)
    original_bucket = services._bucket
    calls = []

    def bucket_while_a_late_point_arrives(at, size):
        calls.append(at)
        if len(calls) == 2:  # the first is the cutoff's; the second folds a point already read
            MetricPoint.objects.create(series="host.cpu_pct", at=old, sum=60.0, count=1, min=60, max=60)
        return original_bucket(at, size)

    monkeypatch.setattr(services, "_bucket", bucket_while_a_late_point_arrives)
    services.metric_points_downsample(source="raw", target="1m", older_than=timedelta(hours=48),
                                      size=timedelta(minutes=1))  # fmt: skip
    monkeypatch.undo()
    services.metric_points_downsample(
        source="raw", target="1m", older_than=timedelta(hours=48), size=timedelta(minutes=1)
    )  # fmt: skip (the next run folds the late one)

    folded = MetricPoint.objects.filter(series="host.cpu_pct")  # not the tokens/s points earlier tests committed
    assert sum(folded.values_list("sum", flat=True)) == 100.0
    assert set(folded.values_list("resolution", flat=True)) == {"1m"}
