"""An alert resolves once its value is back past the threshold by the hysteresis band, also without a band
and where the band reaches past what the metric can take (0% or 100%): such alerts fired for good."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import services
from apps.metrics.models import Alert, AlertRule
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    """The migrations seed the brief's rules: only each test's own rules run."""
    AlertRule.objects.all().delete()


@pytest.mark.parametrize(
    ("threshold", "hysteresis", "calm", "in_band"),
    [
        (80.0, 0.0, 80.0, None),  # no band: back at the threshold is no longer breaching, resolved
        (10.0, 100.0, 1.0, 7.0),  # the band reached 0%: cut to half the room, 5%
        (80.0, 10.0, 70.0, 75.0),  # a band inside the range is as it was: resolved under 72%
    ],
)
def test_a_cpu_alert_resolves_once_back_past_its_band(threshold, hysteresis, calm, in_band):
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=threshold, hysteresis_pct=hysteresis,
                             for_seconds=0, window_minutes=1)  # fmt: skip
    start = timezone.now() - timedelta(minutes=10)
    host_sample(cpu=97.0, at=start)
    [fired] = alerts_evaluate_committed(now=start + timedelta(seconds=1))
    minute = 1
    if in_band is not None:
        host_sample(cpu=in_band, at=start + timedelta(minutes=minute, seconds=5))
        assert alerts_evaluate_committed(now=start + timedelta(minutes=minute, seconds=6)) == []
        assert Alert.objects.get(pk=fired.pk).state == Alert.State.FIRING
        minute += 2
    host_sample(cpu=calm, at=start + timedelta(minutes=minute, seconds=5))
    [resolved] = alerts_evaluate_committed(now=start + timedelta(minutes=minute, seconds=6))
    assert resolved.pk == fired.pk and resolved.state == Alert.State.RESOLVED
    assert resolved.last_value == pytest.approx(calm)


def _reads(requests: int, loads: int, *, at) -> None:
    services.metric_points_record(values={"cache.patient_data.requests": requests, "cache.patient_data.loads": loads},
                                  at=at)  # fmt: skip


def test_a_hit_rate_alert_whose_band_reaches_past_100_percent_resolves():
    """Below 95% with a 10% band: it resolved only above 104.5%, which no hit rate reaches."""
    AlertRule.objects.create(name="Hit rate", metric="cache_hit_rate_pct", operator="lt", threshold=95,
                             hysteresis_pct=10, for_seconds=0, window_minutes=1)  # fmt: skip
    start = timezone.now() - timedelta(minutes=10)
    _reads(1000, 500, at=start)
    [fired] = alerts_evaluate_committed(now=start + timedelta(seconds=1))
    _reads(1000, 40, at=start + timedelta(minutes=2))  # 96%: inside the band cut to 97.5%
    assert alerts_evaluate_committed(now=start + timedelta(minutes=2, seconds=1)) == []
    _reads(1000, 10, at=start + timedelta(minutes=4))  # 99%
    [resolved] = alerts_evaluate_committed(now=start + timedelta(minutes=4, seconds=1))
    assert resolved.pk == fired.pk and resolved.state == Alert.State.RESOLVED


@pytest.mark.parametrize(
    ("metric", "operator", "threshold", "hysteresis", "recovered", "still_firing"),
    [
        ("benchmark_regressions", "gt", 0, 10, 0, 1),  # a threshold of 0 has no band: none left resolves it
        ("error_rate_pct", "gt", 5, 100, 2.4, 2.5),
        ("cache_hit_rate_pct", "lt", 95, 10, 97.6, 97.5),
        ("p95_ms", "lt", 100, 0, 100, 99.9),
        ("p95_ms", "gt", 500, 10, 449.9, 450),  # inside the range: as before
    ],
)
def test_the_recovery_level_is_one_the_metric_can_reach(metric, operator, threshold, hysteresis, recovered,
                                                        still_firing):  # fmt: skip
    rule = AlertRule(metric=metric, operator=operator, threshold=threshold, hysteresis_pct=hysteresis)
    assert rule.recovered(recovered) and not rule.recovered(still_firing)
