"""The optimizer's scaling step reads each service's newest replica plan. Once no forecast has replaced it for a
day (the forecasts stopped: no history, a worker down) it plans no hour ahead, and `optimize --apply` raised the
maximum replicas from what it needed weeks ago. A stale plan is named as such, advice to look at the forecasts,
and no maximum is raised from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.optimizer import services as optimizer
from apps.optimizer.models import Recommendation
from apps.scaling import services
from apps.scaling.models import ScalingPolicy, ScalingRecommendation
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)


def policy_planned(*, days_ago: float, needed: int = 80) -> ScalingPolicy:
    service = Service.objects.create(name="triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, predictive=False, history_source="synthetic", max_replicas=10)[0]
    made_at = timezone.now() - timedelta(days=days_ago)
    hours = [{"at": (made_at + timedelta(hours=i)).isoformat(), "replicas": 10, "needed": needed} for i in range(24)]
    plan = ScalingRecommendation.objects.create(service=service, hours=hours, peak_replicas=10, min_replicas=10,
                                                reasons=["A peak."])  # fmt: skip
    ScalingRecommendation.objects.filter(pk=plan.pk).update(created_at=made_at)
    return policy


def optimize_apply():
    run = optimizer.optimization_run_create(target="scaling", apply=True, inline=True, requested_by="test")
    return optimizer.optimization_run_inline(run)


def test_no_maximum_is_raised_from_a_stale_plan():
    policy = policy_planned(days_ago=40)
    run = optimize_apply()
    policy.refresh_from_db()
    assert policy.max_replicas == 10
    assert not run.recommendations.filter(kind="scaling_max_replicas").exists()
    advice = run.recommendations.get(kind="scaling_plan_stale")
    assert advice.actionable is False and advice.status == Recommendation.Status.PENDING
    assert "no forecast has replaced it" in advice.reason
    summary = run.steps.get(name="scaling").findings["services"][0]
    assert summary["plan"]["stale"] is True


def test_a_fresh_plan_still_raises_the_maximum():
    policy = policy_planned(days_ago=0.2)
    run = optimize_apply()
    policy.refresh_from_db()
    assert policy.max_replicas == 80
    assert run.recommendations.get(kind="scaling_max_replicas").status == Recommendation.Status.APPLIED
    assert not run.recommendations.filter(kind="scaling_plan_stale").exists()
