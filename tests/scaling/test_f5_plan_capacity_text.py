"""A plan's reason rounded the capacity per replica to one decimal: 0.01 req/s read "0.0 req/s per replica".
It is now given to three significant figures below 100 req/s, whole above."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.scaling import services
from apps.scaling.models import WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _plan_reason(capacity: float) -> str:
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, history_source="synthetic", replica_capacity_rps=capacity)[0]
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    points = [{"at": (start + timedelta(hours=i)).isoformat(), "p10": 0.005, "p50": 0.008, "p90": 0.01}
              for i in range(24)]  # fmt: skip
    forecast = WorkloadForecast.objects.create(service=service, metric="request_rate", source="synthetic",
                                               history_hours=240, model="calendar_profile", points=points)  # fmt: skip
    return services.recommendation_create(policy, forecast).reasons[0]


@pytest.mark.parametrize(
    ("capacity", "shown"),
    [(0.01, "0.01 req/s per replica"), (0.125, "0.125 req/s per replica"), (50.0, "50 req/s per replica"),
     (12.34, "12.3 req/s per replica"), (2500.0, "2,500 req/s per replica")],
)  # fmt: skip
def test_the_capacity_per_replica_is_shown_as_set(capacity, shown):
    reason = _plan_reason(capacity)
    assert shown in reason, reason
