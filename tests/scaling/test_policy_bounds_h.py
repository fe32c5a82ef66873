"""Huge and non-finite values in a scaling policy.

A target req/s per pod had no upper bound (1e300 went to the cluster as a 301-digit HPA target, and KEDA's
threshold "1e+300": the autoscaler never scaled on it), the replica counts none but PostgreSQL's integer (a
maximum or minimum of 2,147,483,647 went to the cluster as the HPA's), and NaN passed every min/max validator
(each comparison is False). The admin form refuses NaN and infinity itself; a fixture, the shell or raw SQL
stored them, and then the manifests raised: the manifest preview answered 500, and the checker's pass stopped
at that policy, every policy after it left unapplied. No Kubernetes API server can run here: the cluster is
the fake one on loopback (tests/scaling/fake_servers.py).
"""

from __future__ import annotations

import math

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from apps.accounts.roles import VIEWERS
from apps.scaling import manifests, services
from apps.scaling.checks import policy_bound_problems
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db

REPLICA_FIELDS = ("min_replicas", "max_replicas", "max_replicas_ceiling", "emergency_min_replicas")


def _policy(slug: str = "triage", **fields) -> ScalingPolicy:
    service = Service.objects.create(name=slug.title(), slug=slug, route_prefix=f"api/{slug}/")
    return services.scaling_policy_ensure(service, history_source="synthetic", predictive=False, **fields)[0]


def _errors(policy: ScalingPolicy, **fields) -> dict[str, list[str]]:
    for name, value in fields.items():
        setattr(policy, name, value)
    try:
        policy.full_clean()
    except ValidationError as refused:
        return refused.message_dict
    return {}


@pytest.mark.parametrize("value", [1e300, 1_000_001.0, math.inf])
def test_a_target_rps_per_pod_beyond_any_pod_is_refused(value):
    assert "target_rps_per_pod" in _errors(_policy(), target_rps_per_pod=value)


def test_the_largest_target_rps_per_pod_allowed_is_valid():
    assert _errors(_policy(), target_rps_per_pod=1_000_000.0) == {}


@pytest.mark.parametrize("field", ["target_rps_per_pod", "replica_capacity_rps", "target_utilization"])
@pytest.mark.parametrize("value", [math.nan, -math.inf])
def test_not_a_number_is_refused_in_every_float_field(field, value):
    assert field in _errors(_policy(), **{field: value})


def test_a_replica_count_of_two_billion_is_refused():
    huge = 2_000_000_000
    errors = _errors(_policy(), min_replicas=huge, max_replicas=huge, max_replicas_ceiling=huge,
                     emergency_min_replicas=huge, stress_test_replicas=huge, pdb_max_unavailable=1)  # fmt: skip
    assert set(REPLICA_FIELDS) | {"stress_test_replicas"} <= set(errors)
    assert _errors(_policy("other"), max_replicas=10_000, max_replicas_ceiling=10_000) == {}


def test_stored_values_out_of_bounds_are_named_by_the_check():
    policy = _policy()
    ScalingPolicy.objects.filter(pk=policy.pk).update(
        target_rps_per_pod=math.nan, replica_capacity_rps=math.inf, max_replicas=2_000_000_000
    )
    policy.refresh_from_db()
    problems = policy_bound_problems(policy)
    assert {"target_rps_per_pod", "replica_capacity_rps", "max_replicas"} <= set(problems)
    assert "finite" in problems["target_rps_per_pod"]


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_stored_non_finite_target_is_refused_by_the_validation_not_raised(value):
    policy = _policy()
    ScalingPolicy.objects.filter(pk=policy.pk).update(target_rps_per_pod=value)
    policy.refresh_from_db()
    docs = services.policy_manifests(policy)
    assert any("averageValue" in error for error in manifests.validate(docs))

    policy.keda_enabled = True
    docs = services.policy_manifests(policy)
    assert any("prometheus threshold" in error for error in manifests.validate(docs))


def test_the_manifest_preview_of_a_stored_nan_answers_with_its_errors(api, django_user_model):
    user = django_user_model.objects.create_user("viewer", "v@example.org", "pw-viewer-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=VIEWERS))
    api.force_login(user)
    policy = _policy()
    ScalingPolicy.objects.filter(pk=policy.pk).update(target_rps_per_pod=math.nan)
    response = api.get(f"/api/v1/scaling/policies/{policy.pk}/manifests/")
    assert response.status_code == 200
    assert any("averageValue nan" in error for error in response.json()["errors"])


@pytest.mark.django_db(transaction=True)
def test_a_stored_nan_fails_its_own_apply_and_the_checker_goes_on_to_the_others(cluster):
    broken, other = _policy("a-broken"), _policy("b-other")
    ScalingPolicy.objects.filter(pk=broken.pk).update(target_rps_per_pod=math.nan)
    services.policies_reconcile()
    broken.refresh_from_db()
    other.refresh_from_db()
    assert other.apply_state == "active", other.apply_error
    assert broken.apply_state == "failed" and "averageValue nan" in broken.apply_error
    assert cluster.autoscalers_of("medical-ai", "a-broken") == []  # nothing absurd reached the cluster


def test_a_stored_nan_capacity_is_not_forecast_and_says_why():
    """NaN passed the forecast's bound check (services.usable_history) and reached the plan's arithmetic."""
    policy = _policy()
    ScalingPolicy.objects.filter(pk=policy.pk).update(replica_capacity_rps=math.nan, predictive=True)
    services.forecasts_refresh(services=[policy.service])
    policy.refresh_from_db()
    assert "out of bounds" in policy.forecast_skipped["request_rate"]
    assert "finite" in policy.forecast_skipped["request_rate"]
    assert not policy.service.scaling_recommendations.exists()
