"""A service whose forecasts stopped (a worker down, its history gone) keeps its newest replica plan through the
30-day prune, and with it its KEDA cron windows: the prune deleted it, the next apply took the windows off the
cluster, and predictive scaling was gone without a word. Kept, the plan is shown as stale wherever it shows."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.scaling import selectors, services
from apps.scaling.manifests import ANNOTATION
from apps.scaling.models import ScalingPolicy, ScalingRecommendation, WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db

STALE = f"{ANNOTATION}/stale-plan-made-at"


def _policy(slug: str) -> ScalingPolicy:
    service = Service.objects.create(name=slug, slug=slug, route_prefix=f"api/{slug}/")
    return services.scaling_policy_ensure(service, keda_enabled=True, history_source="synthetic")[0]


def _made(days_ago: float, *, service: Service, forecast: bool = True) -> ScalingRecommendation:
    """A forecast and the plan made from it `days_ago`, peaking 06:00-09:00 at 8 replicas."""
    made_at = timezone.now() - timedelta(days=days_ago)
    start = made_at.replace(hour=0, minute=0, second=0, microsecond=0)
    hours = [{"at": (start + timedelta(hours=i)).isoformat(), "replicas": 8 if 6 <= i < 9 else 2} for i in range(24)]
    made = None
    if forecast:
        made = WorkloadForecast.objects.create(service=service, metric="request_rate", source="synthetic",
                                               history_hours=240, model="calendar_profile", points=[])  # fmt: skip
        WorkloadForecast.objects.filter(pk=made.pk).update(created_at=made_at)
    plan = ScalingRecommendation.objects.create(service=service, forecast=made, hours=hours, peak_replicas=8,
                                                min_replicas=2, reasons=["Peak 8 replicas."])  # fmt: skip
    ScalingRecommendation.objects.filter(pk=plan.pk).update(created_at=made_at)
    plan.refresh_from_db()
    return plan


def _scaled_object(policy: ScalingPolicy) -> dict:
    return services.policy_manifests(policy)[f"{policy.service.slug}-scaledobject.yaml"]


def _crons(policy: ScalingPolicy) -> list[dict]:
    return [trigger["metadata"] for trigger in _scaled_object(policy)["spec"]["triggers"] if trigger["type"] == "cron"]


def test_the_prune_keeps_each_service_s_newest_plan_and_its_windows_however_old():
    policy, other = _policy("triage"), _policy("imaging")
    older, newest = _made(50, service=policy.service), _made(40, service=policy.service)
    # Another service's old plan without its forecast (deleted): the prune still deletes old forecasts.
    _made(45, service=other.service, forecast=False)
    orphan = WorkloadForecast.objects.create(service=other.service, metric="cpu", source="synthetic",
                                             history_hours=240, model="seasonal_naive_24", points=[])  # fmt: skip
    WorkloadForecast.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(days=45))
    windows = _crons(policy)
    assert [(w["start"], w["end"], w["desiredReplicas"]) for w in windows] == [("0 6 * * *", "0 9 * * *", "8")]

    assert services.forecasts_prune() == 2  # the older plan's forecast, the orphan

    assert list(policy.service.scaling_recommendations.all()) == [newest]
    assert not ScalingRecommendation.objects.filter(pk=older.pk).exists()
    assert WorkloadForecast.objects.filter(pk=newest.forecast_id).exists()
    assert not WorkloadForecast.objects.filter(pk=orphan.pk).exists()
    assert other.service.scaling_recommendations.count() == 1  # its newest, kept too
    assert _crons(policy) == windows


def test_a_stale_plan_says_so_in_the_manifests_the_api_the_admin_and_the_status():
    policy = _policy("triage")
    _made(40, service=policy.service)
    services.forecasts_prune()

    annotations = _scaled_object(policy)["metadata"]["annotations"]
    plan = policy.service.scaling_recommendations.get()
    assert annotations[STALE] == plan.created_at.isoformat()
    row = next(row for row in selectors.scaling_overview() if row["id"] == policy.pk)
    assert row["plan"]["stale"] is True
    admin_text = _admin_plan(policy)
    assert "Stale: made" in admin_text and "(40 days ago)" in admin_text
    out = StringIO()
    call_command("scaling", "status", stdout=out)
    assert "stale replica plan from" in out.getvalue()


def test_a_fresh_plan_is_not_stale_and_leaves_the_manifests_as_they_were():
    policy = _policy("triage")
    _made(0.5, service=policy.service)
    annotations = _scaled_object(policy)["metadata"]["annotations"]
    assert STALE not in annotations
    row = next(row for row in selectors.scaling_overview() if row["id"] == policy.pk)
    assert row["plan"]["stale"] is False
    assert "Stale" not in _admin_plan(policy)
    out = StringIO()
    call_command("scaling", "status", stdout=out)
    assert "stale" not in out.getvalue()


def _admin_plan(policy: ScalingPolicy) -> str:
    from django.contrib import admin

    return str(admin.site._registry[ScalingPolicy].latest_plan(policy))
