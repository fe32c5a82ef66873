"""Alerts are judged on the database's clock, which stamps the request rollups and the host samples they read:
an evaluating worker whose clock ran ahead read windows nothing was written in yet, and a breach went unseen.

Only the alerts service's clock (its module's `timezone`) is moved; the database's is the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import services
from apps.metrics.models import AlertRule
from apps.metrics.recorder import Recorder
from tests.helpers import ShiftedTimezone

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("shift", [timedelta(hours=1), timedelta(minutes=-20)], ids=["hour-ahead", "20-min-behind"])
def test_an_evaluator_whose_clock_is_off_still_sees_the_last_minutes_breach(monkeypatch, shift):
    rule = AlertRule.objects.create(name="p95 over 5 min", metric="p95_ms", threshold=500, window_minutes=5,
                                    for_seconds=0, min_requests=5)  # fmt: skip
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(10):
        process.record(route="api/v1/alert-clock/", method="GET", status=200, client="app", elapsed_us=900_000)
    process.flush()
    monkeypatch.setattr(services, "timezone", ShiftedTimezone(shift))
    fired = services.alerts_evaluate()
    assert rule in [alert.rule for alert in fired if alert.state == "firing"]
