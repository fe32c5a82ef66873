"""A policy's ceiling (max_replicas_ceiling) bounds only how far the optimizer raises the maximum replicas; the
replica plan and the manifests are held to the maximum, the cluster's maxReplicaCount. A ceiling stored below the
maximum (before scaling 0011, raw SQL, a fixture) is therefore not read by the forecast, by design: planning to it
would hold a service below what its cluster allows and its load needs, on a value the model refuses today. What
it does mean (the optimizer raises nothing) is what `manage.py check` (scaling.W001) now says, with the maximum
the plans are held to; before, its hint only asked to bring the ceiling "within the bounds named"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from apps.optimizer import services as optimizer
from apps.scaling import services
from apps.scaling.models import ScalingPolicy, WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _policy_with_a_low_ceiling() -> ScalingPolicy:
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(
        service, history_source="synthetic", replica_capacity_rps=10, target_utilization=0.5, lead_minutes=0,
        max_replicas=12,
    )[0]  # fmt: skip
    ScalingPolicy.objects.filter(pk=policy.pk).update(max_replicas_ceiling=4)  # as stored before 0011
    return ScalingPolicy.objects.select_related("service").get(pk=policy.pk)


def _forecast(service: Service, p90: list[float]) -> WorkloadForecast:
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    points = [{"at": (start + timedelta(hours=i)).isoformat(), "p10": v / 2, "p50": v * 0.8, "p90": v}
              for i, v in enumerate(p90)]  # fmt: skip
    return WorkloadForecast.objects.create(service=service, metric="request_rate", source="synthetic",
                                           history_hours=240, model="seasonal_naive", points=points)  # fmt: skip


def test_the_plan_and_the_manifests_are_held_to_the_maximum_not_the_ceiling():
    policy = _policy_with_a_low_ceiling()
    plan = services.recommendation_create(policy, _forecast(policy.service, [10.0] * 12 + [50.0] + [200.0] * 11))
    replicas = [hour["replicas"] for hour in plan.hours]
    # 5 req/s usable per replica: 10 replicas for 50 req/s (above the ceiling of 4), 40 needed capped at 12.
    assert replicas[12] == 10 and max(replicas) == 12 and plan.peak_replicas == 12
    assert any("above the maximum of 12" in reason for reason in plan.reasons)
    spec = services.policy_spec(policy)
    assert spec.max_replicas == 12


def test_the_check_says_what_a_ceiling_below_the_maximum_means():
    _policy_with_a_low_ceiling()
    [warning] = [message for message in run_checks(tags=["scaling"]) if message.id == "scaling.W001"]
    assert "triage" in warning.msg and "below the maximum replicas (12)" in warning.msg
    assert "held to the maximum (12), never to the ceiling" in warning.hint
    assert "the optimizer raises nothing" in warning.hint
    assert "Raise the ceiling to at least the maximum" in warning.hint


def test_the_optimizer_neither_raises_nor_lowers_the_maximum_under_a_low_ceiling():
    policy = _policy_with_a_low_ceiling()
    services.recommendation_create(policy, _forecast(policy.service, [200.0] * 24))  # 40 needed, 12 allowed
    run = optimizer.optimization_run_create(target="scaling", apply=True, inline=True, requested_by="test")
    run = optimizer.optimization_run_inline(run)
    advice = run.recommendations.get(subject="triage", kind="scaling_max_replicas_ceiling")
    assert advice.actionable is False and "above its ceiling of 4" in advice.title
    assert not run.recommendations.filter(kind="scaling_max_replicas").exists()
    assert ScalingPolicy.objects.get(pk=policy.pk).max_replicas == 12
