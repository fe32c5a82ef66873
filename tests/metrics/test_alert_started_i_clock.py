"""An alert's start is the evaluation's time (the database's clock), as its resolution is: `started_at` was
auto_now_add, the evaluating worker's own clock, so a worker an hour ahead stored an alert that started an hour
after it resolved (a negative duration in the webhook, and the alert list ordered by that clock)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from apps.metrics import services
from apps.metrics.models import Alert, AlertRule
from apps.resources.selectors import database_now
from tests.metrics.support import host_sample

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


def test_an_alert_starts_and_resolves_on_the_database_clock_whatever_the_workers():
    rule = AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=80, for_seconds=0, window_minutes=1,
                                    hysteresis_pct=0)  # fmt: skip
    host_sample(cpu=97.0, at=database_now())
    real = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real() + timedelta(hours=1)):  # this worker an hour ahead
        before = database_now()
        [fired] = services.alerts_evaluate()
        after = database_now()
    alert = Alert.objects.get(pk=fired.pk)
    assert before <= alert.started_at <= after  # before: an hour after `after`
    rule.refresh_from_db()
    assert alert.started_at == rule.last_evaluated_at == rule.pending_since

    AlertRule.objects.filter(pk=rule.pk).update(threshold=99)
    with mock.patch("django.utils.timezone.now", lambda: real() + timedelta(hours=1)):
        host_sample(cpu=10.0, at=database_now())
        [resolved] = services.alerts_evaluate()
    alert.refresh_from_db()
    assert resolved.pk == alert.pk and alert.state == Alert.State.RESOLVED
    assert alert.resolved_at >= alert.started_at  # before: resolved an hour before it started


def test_the_evaluations_time_is_the_alerts_start():
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=80, for_seconds=0, window_minutes=1)
    now = database_now()
    host_sample(cpu=97.0, at=now - timedelta(seconds=30))
    [fired] = services.alerts_evaluate(now=now)
    assert Alert.objects.get(pk=fired.pk).started_at == now
