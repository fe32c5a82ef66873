"""A NaN reading (a failed sample) must not silence the CPU and memory alerts: it made its host's mean NaN,
which PostgreSQL sorts above every number and which compares false to any threshold (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import selectors
from apps.metrics.models import AlertRule, MetricPoint
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db

NAN = float("nan")


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


@pytest.mark.parametrize("nan_host", ["worker-b", "worker-a"])  # another host's NaN, or the busy host's own
def test_a_nan_sample_does_not_silence_a_cpu_alert(nan_host):
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=80, for_seconds=0, window_minutes=5)
    start = timezone.now() - timedelta(minutes=10)
    host_sample(host="worker-a", cpu=97.0, at=start)
    host_sample(host="worker-b", cpu=20.0, at=start)
    host_sample(host=nan_host, cpu=NAN, at=start + timedelta(seconds=30))
    [alert] = alerts_evaluate_committed(now=start + timedelta(minutes=1))
    assert alert.value == pytest.approx(97.0)
    assert alert.message.startswith("host CPU (%) on worker-a is 97.0")


def test_a_nan_sample_does_not_keep_a_firing_memory_alert_from_resolving():
    rule = AlertRule.objects.create(name="Memory", metric="memory_pct", threshold=85, for_seconds=0,
                                    window_minutes=1)  # fmt: skip
    start = timezone.now() - timedelta(minutes=10)
    host_sample(host="worker-a", memory=97.0, at=start)
    [fired] = alerts_evaluate_committed(now=start + timedelta(seconds=1))
    host_sample(host="worker-a", memory=40.0, at=start + timedelta(minutes=2))
    host_sample(host="worker-a", memory=NAN, at=start + timedelta(minutes=2, seconds=10))
    [resolved] = alerts_evaluate_committed(now=start + timedelta(minutes=2, seconds=20))
    assert resolved.pk == fired.pk and resolved.last_value == pytest.approx(40.0)
    rule.refresh_from_db()
    assert rule.last_value == pytest.approx(40.0)


def test_a_nan_point_of_a_sampled_series_is_left_out_of_its_mean():
    """A point stored before samples were checked (metric_points_record leaves them out now)."""
    now = timezone.now()
    MetricPoint.objects.bulk_create(
        MetricPoint(series="host.disk_pct", at=now - timedelta(seconds=s), sum=v, count=1, min=v, max=v)
        for s, v in ((10, 90.0), (20, NAN))
    )
    assert selectors.host_gauge("disk_pct", since=now - timedelta(minutes=1), until=now) == pytest.approx(90.0)


def test_the_live_host_figures_skip_a_nan_reading():
    now = timezone.now()
    host_sample(host="worker-b", cpu=63.0, at=now - timedelta(seconds=20))
    host_sample(host="worker-a", cpu=NAN, at=now - timedelta(seconds=10))  # the newest: max() kept it, first
    assert selectors.live_snapshot()["host"]["cpu_pct"] == pytest.approx(63.0)
