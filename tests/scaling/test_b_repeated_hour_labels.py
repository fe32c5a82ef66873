"""A replica plan across the night the clocks go back names each hour once: on a New York clock 01:00 happens
twice (05:00Z EDT, 06:00Z EST), and the plan's peak ('Peak 12 replicas at 01:00 America/New_York') and the admin
chart's bars (two tooltips '01:00 America/New_York: ... replicas') did not say which 01:00 it was."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.scaling import charts, services
from apps.scaling.models import WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT on the 31st
PEAK = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 01:00 EST, the second 01:00


@pytest.fixture
def plan(settings):
    settings.TIME_ZONE = "America/New_York"
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, history_source="synthetic", replica_capacity_rps=10.0,
                                            lead_minutes=0)[0]  # fmt: skip
    points = []
    for i in range(24):
        at = START + timedelta(hours=i)
        p90 = 80.0 if at == PEAK else 5.0 if at == PEAK - timedelta(hours=1) else 1.0
        points.append({"at": at.isoformat(), "p10": p90 / 2, "p50": p90 / 1.5, "p90": p90})
    forecast = WorkloadForecast.objects.create(service=service, metric="request_rate", source="synthetic",
                                               history_hours=240, model="calendar_profile", points=points)  # fmt: skip
    return services.recommendation_create(policy, forecast)


def test_the_peak_in_the_repeated_hour_says_which_one(plan):
    assert "at 01:00 EST (America/New_York) for a P90 " in plan.reasons[0], plan.reasons[0]


def test_the_chart_s_two_repeated_hours_read_apart(plan):
    tooltips = re.findall(r"<title>([^<]*)</title>", str(charts.replicas_svg(plan.hours)))
    at_one = [tip for tip in tooltips if tip.startswith("01:00")]
    assert len(at_one) == 2 and len(set(at_one)) == 2, tooltips
    assert at_one == ["01:00 EDT (America/New_York): 2 replicas", "01:00 EST (America/New_York): 12 replicas"]
    assert len(set(tooltips)) == len(tooltips), tooltips
