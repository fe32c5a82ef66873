"""Replica counts stored past the model's bound (MAX_REPLICAS_LIMIT, 10,000) never reach the cluster.

The bound was the model's validators only: a count stored by raw SQL, the shell, a fixture or a release
before the bound (a maximum and minimum of 2,147,483,647) went to the cluster as the HPA's minReplicas and
maxReplicas, while a stored NaN was refused by the manifests' validation. The validation now refuses the
counts past the bound too: the apply fails with the reason, the checker goes on to the other policies. No
Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py).
"""

from __future__ import annotations

import pytest

from apps.scaling import manifests, services
from apps.scaling.models import MAX_REPLICAS_LIMIT, ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db

HUGE = 2_147_483_647  # PostgreSQL's largest integer


def _policy(slug: str = "triage", **fields) -> ScalingPolicy:
    service = Service.objects.create(name=slug.title(), slug=slug, route_prefix=f"api/{slug}/")
    return services.scaling_policy_ensure(service, history_source="synthetic", predictive=False, **fields)[0]


def _stored(policy: ScalingPolicy, **values) -> ScalingPolicy:
    """Stored past the model's validators, as raw SQL would."""
    ScalingPolicy.objects.filter(pk=policy.pk).update(**values)
    policy.refresh_from_db()
    return policy


@pytest.mark.parametrize("keda", [False, True])
def test_a_stored_maximum_past_the_limit_is_refused_by_the_validation(keda):
    policy = _stored(_policy(keda_enabled=keda), max_replicas=HUGE)
    errors = manifests.validate(services.policy_manifests(policy))
    name = "maxReplicaCount" if keda else "maxReplicas"
    assert any(f"{name} {HUGE}: must be at most 10,000" in error for error in errors), errors


@pytest.mark.parametrize("keda", [False, True])
def test_a_stored_minimum_past_the_limit_is_refused_by_the_validation(keda):
    policy = _stored(_policy(keda_enabled=keda), min_replicas=HUGE, max_replicas=HUGE)
    errors = manifests.validate(services.policy_manifests(policy))
    name = "minReplicaCount" if keda else "minReplicas"
    assert any(f"{name} {HUGE}: must be at most 10,000" in error for error in errors), errors


def test_a_stored_emergency_minimum_past_the_limit_is_refused_in_emergency_mode():
    policy = _stored(_policy(), emergency_min_replicas=HUGE, emergency_mode=True, max_replicas=HUGE)
    errors = manifests.validate(services.policy_manifests(policy))
    assert any(f"minReplicas {HUGE}" in error for error in errors), errors


def test_a_stored_pdb_budget_past_the_limit_is_refused():
    policy = _stored(_policy(), pdb_max_unavailable=HUGE)
    errors = manifests.validate(services.policy_manifests(policy))
    assert any(f"maxUnavailable {HUGE}: must be at most 10,000" in error for error in errors), errors


def test_a_stored_minimum_below_one_is_still_refused():
    policy = _stored(_policy(), min_replicas=0)
    errors = manifests.validate(services.policy_manifests(policy))
    assert any("minReplicas 0: must be at least 1" in error for error in errors), errors


@pytest.mark.parametrize("keda", [False, True])
def test_counts_at_the_limit_are_valid(keda):
    policy = _stored(_policy(keda_enabled=keda), max_replicas=MAX_REPLICAS_LIMIT, min_replicas=MAX_REPLICAS_LIMIT)
    assert manifests.validate(services.policy_manifests(policy)) == []


@pytest.mark.django_db(transaction=True)
def test_a_stored_count_past_the_limit_fails_its_own_apply_and_the_checker_goes_on(cluster):
    broken, other = _policy("a-broken"), _policy("b-other")
    _stored(broken, min_replicas=HUGE, max_replicas=HUGE)
    services.policies_reconcile()
    broken.refresh_from_db()
    other.refresh_from_db()
    assert other.apply_state == "active", other.apply_error
    assert broken.apply_state == "failed", broken.apply_state
    assert f"maxReplicas {HUGE}: must be at most 10,000" in broken.apply_error
    assert cluster.autoscalers_of("medical-ai", "a-broken") == []  # nothing absurd reached the cluster
    sent = [request for request in cluster.requests if "a-broken" in request["path"]]
    assert sent == [], sent
