"""`scaling status` said a stale plan's "KEDA cron windows repeat it every day" for a policy with KEDA off,
where no cron window carries the plan: that is now said only when KEDA is on."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.scaling import services
from apps.scaling.models import ScalingRecommendation
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _status_with_a_stale_plan(*, keda: bool) -> str:
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    services.scaling_policy_ensure(service, keda_enabled=keda, history_source="synthetic")
    made_at = timezone.now() - timedelta(days=3)
    hours = [{"at": (made_at + timedelta(hours=i)).isoformat(), "replicas": 2} for i in range(24)]
    plan = ScalingRecommendation.objects.create(service=service, hours=hours, peak_replicas=2, min_replicas=2,
                                                reasons=["Peak 2 replicas."])  # fmt: skip
    ScalingRecommendation.objects.filter(pk=plan.pk).update(created_at=made_at)
    out = StringIO()
    call_command("scaling", "status", stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("keda", [True, False])
def test_the_cron_windows_are_named_only_when_keda_is_on(keda):
    shown = _status_with_a_stale_plan(keda=keda)
    assert "stale replica plan from" in shown
    assert ("KEDA cron windows repeat it" in shown) is keda, shown
