"""The optimizer raises a policy's maximum replicas at most to the policy's ceiling (max_replicas_ceiling,
100 unless edited): `optimize --apply` raised it to whatever the forecast asked, thousands of replicas from a
forecast gone wrong. The proposal, its evidence and the outcome say when the ceiling held it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.optimizer import services as optimizer
from apps.optimizer.models import Recommendation
from apps.scaling import services
from apps.scaling.models import MAX_REPLICAS_CEILING, ScalingPolicy, ScalingRecommendation
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)

ASKED = 5000  # what a forecast gone wrong needs at its peak


def policy_planned(needed: int, **fields) -> ScalingPolicy:
    service = Service.objects.create(name="triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, predictive=False, history_source="synthetic", **fields)[0]
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    hours = [
        {"at": (start + timedelta(hours=i)).isoformat(), "replicas": policy.max_replicas, "needed": needed}
        for i in range(24)
    ]
    ScalingRecommendation.objects.create(service=service, hours=hours, peak_replicas=policy.max_replicas,
                                         min_replicas=policy.max_replicas, reasons=["A peak."])  # fmt: skip
    return policy


def raise_proposal(run, replicas: int) -> Recommendation:
    return Recommendation.objects.create(
        run=run, step="scaling", kind="scaling_max_replicas", subject="triage", title="Raise", reason="forecast",
        change={"max_replicas": replicas},
    )  # fmt: skip


def optimize_apply():
    run = optimizer.optimization_run_create(target="scaling", apply=True, inline=True, requested_by="test")
    return optimizer.optimization_run_inline(run)


def test_optimize_apply_raises_the_maximum_only_to_the_ceiling():
    policy = policy_planned(ASKED, min_replicas=2, max_replicas=3)
    run = optimize_apply()
    policy.refresh_from_db()
    assert policy.max_replicas == MAX_REPLICAS_CEILING == 100
    raised = run.recommendations.get(kind="scaling_max_replicas")
    assert raised.status == Recommendation.Status.APPLIED and raised.change == {"max_replicas": 100}
    assert raised.evidence["capped"] is True and raised.evidence["max_replicas_ceiling"] == 100
    assert "its ceiling (the forecast needs 5000)" in raised.title
    assert raised.outcome["before"] == {"max_replicas": 3} and raised.outcome["after"] == {"max_replicas": 100}
    assert run.status == "succeeded", run.error


def test_a_policy_at_its_ceiling_gets_advice_not_a_raise():
    policy = policy_planned(ASKED, max_replicas=40, max_replicas_ceiling=40)
    run = optimize_apply()
    policy.refresh_from_db()
    assert policy.max_replicas == 40
    assert not run.recommendations.filter(kind="scaling_max_replicas").exists()
    advice = run.recommendations.get(kind="scaling_max_replicas_ceiling")
    assert advice.actionable is False and "above its ceiling of 40" in advice.title


def test_a_proposal_made_before_the_ceiling_is_held_to_it_when_applied():
    policy = policy_planned(ASKED, max_replicas=3)
    run = optimizer.optimization_run_create(target="scaling", requested_by="test")
    proposal = raise_proposal(run, 10**6)
    ScalingPolicy.objects.filter(pk=policy.pk).update(max_replicas_ceiling=20)  # an admin's edit since
    done = optimizer.recommendation_apply(recommendation=proposal, via="admin")
    assert done.status == Recommendation.Status.APPLIED, done.outcome
    assert ScalingPolicy.objects.get(pk=policy.pk).max_replicas == 20
    assert done.outcome["capped"] == {"asked": 10**6, "ceiling": 20}


def test_a_proposal_never_lowers_a_maximum_raised_since():
    policy = policy_planned(ASKED, max_replicas=3)
    run = optimizer.optimization_run_create(target="scaling", requested_by="test")
    proposal = raise_proposal(run, 10)
    ScalingPolicy.objects.filter(pk=policy.pk).update(max_replicas=60)  # raised by hand meanwhile
    done = optimizer.recommendation_apply(recommendation=proposal, via="admin")
    assert done.status == Recommendation.Status.FAILED and "nothing to raise" in done.outcome["error"]
    assert ScalingPolicy.objects.get(pk=policy.pk).max_replicas == 60
