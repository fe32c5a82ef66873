"""An alert rule on failed inference model loads: a count over its window, 0 (a value, which recovers a firing
alert) where nothing failed, never "no data"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import selectors, services
from apps.metrics.models import Alert, AlertRule, MetricPoint
from apps.resources.selectors import database_now
from tests.metrics.support import alerts_evaluate_committed

pytestmark = pytest.mark.django_db


def test_a_rule_on_load_failures_fires_on_one_and_resolves_when_the_window_has_none():
    AlertRule.objects.all().delete()
    # Tests that commit (test_kept_model's threads) leave failed loads of their own deployments in the series.
    MetricPoint.objects.filter(series__startswith="inference.load_failures.").delete()
    rule = AlertRule.objects.create(name="model loads failing", metric="inference_load_failures", operator="gt",
                                    threshold=0, window_minutes=5, for_seconds=0, hysteresis_pct=0)  # fmt: skip
    rule.full_clean()
    assert selectors.alert_rule_value(rule, now=database_now()) == 0.0

    services.inference_load_failure_record(deployment="triage-embed", mode="int8")
    services.inference_load_failure_record(deployment="triage-embed", mode="int8")
    [alert] = alerts_evaluate_committed()
    assert alert.state == Alert.State.FIRING and alert.value == 2.0

    MetricPoint.objects.filter(series__startswith="inference.load_failures.").update(
        at=database_now() - timedelta(minutes=10)  # out of the window
    )
    [resolved] = alerts_evaluate_committed()
    assert resolved.pk == alert.pk and resolved.state == Alert.State.RESOLVED
