"""The scaling policy admin's stale-plan line gave when the plan was made on the hospital's clock with no zone:
`Stale: made 2026-11-01 01:30`, which in New York names two instants (the night the clocks go back) and reads as
UTC to anyone comparing it with the API's times. It names the zone as the plan's hours do (charts.clock_label)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.test import override_settings

from apps.scaling import services
from apps.scaling.models import ScalingPolicy, ScalingRecommendation
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("zone", "made_at", "shown"),
    [
        ("America/New_York", datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "2026-11-01 01:30 EDT (America/New_York)"),
        ("America/New_York", datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "2026-11-01 01:30 EST (America/New_York)"),
        ("UTC", datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "2026-11-01 06:30 UTC"),
    ],
)
def test_a_stale_plan_says_when_it_was_made_with_its_zone(zone, made_at, shown):
    service = Service.objects.create(name="triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, keda_enabled=True, history_source="synthetic")[0]
    plan = ScalingRecommendation.objects.create(service=service, hours=[], peak_replicas=2, min_replicas=2,
                                                reasons=["Peak 2 replicas."])  # fmt: skip
    ScalingRecommendation.objects.filter(pk=plan.pk).update(created_at=made_at)
    with override_settings(TIME_ZONE=zone):
        text = str(admin.site._registry[ScalingPolicy].latest_plan(policy))
    assert f"Stale: made {shown} (" in text  # old: 'Stale: made 2026-11-01 01:30 (' for both New York plans
