"""The control-plane overview says in which zone its times are: the last run's start was printed on the
hospital's clock (TIME_ZONE) but labelled UTC, and alerts' starts had no zone at all."""

from datetime import UTC, datetime

import pytest

from apps.metrics.models import Alert, AlertRule
from apps.optimizer.models import OptimizationRun

pytestmark = pytest.mark.django_db


def test_times_carry_their_zone(admin_client, settings):
    settings.TIME_ZONE = "America/New_York"
    started = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    run = OptimizationRun.objects.create(target="cache")
    OptimizationRun.objects.filter(pk=run.pk).update(started_at=started)
    rule = AlertRule.objects.create(name="p95 high", metric="p95_ms", threshold=2000)
    alert = Alert.objects.create(rule=rule, value=2500, last_value=2500, message="p95 2500 ms")
    Alert.objects.filter(pk=alert.pk).update(started_at=started)
    page = admin_client.get("/admin/overview/").content.decode()
    assert "2026-01-15 07:00 EST" in page  # 12:00 UTC on the hospital's clock, said so
    assert "07:00 UTC" not in page
    assert "since 2026-01-15 12:00 UTC" in page
