"""A withdrawal after apply_generation went back below the stamps on the cluster (migration 0014 rolled back and
forward: the column re-added at 0; a database restored from a backup).

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py).
"""

import pytest

from apps.scaling import kube, services
from apps.scaling.models import ScalingPolicy

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "gen-reset"
NS = "medical-ai"
VPA_KEY = ("autoscaling.k8s.io", "verticalpodautoscalers", NS, NAME)


def _applied_three_times(policy: ScalingPolicy) -> ScalingPolicy:
    for _ in range(3):
        services.apply_requested(policy)
        services.policy_apply(policy_id=policy.pk)
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.apply_generation == 3, policy.apply_error
    ScalingPolicy.objects.filter(pk=policy.pk).update(apply_generation=0)  # as 0014 backward + forward leaves it
    return policy


def test_a_disabled_policys_autoscalers_are_withdrawn_at_once_after_the_generation_went_back(
    cluster, policy_for, policy_edit
):
    """The withdrawal (generation 1) read its own HPA and VPA, stamped 3, as a later apply's: it left them and
    said "removed nothing (already gone)", and the checker took as many passes (minutes) as the highest stamp
    to remove them. No apply can come after it (the policy is disabled, no newer claim): deleted as read."""
    policy = _applied_three_times(policy_for(NAME))
    policy_edit(policy, enabled=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert cluster.autoscalers_of(NS, NAME) == []
    assert VPA_KEY not in cluster.objects
    assert policy.apply_state == "not_configured"
    assert policy.apply_error == (
        f"policy disabled: removed VerticalPodAutoscaler/{NAME}, HorizontalPodAutoscaler/{NAME}; "
        "the Deployment keeps its replicas"
    )
    assert not services._withdrawable(policy)


def test_objects_left_for_a_later_apply_are_named_not_called_already_gone(
    cluster, monkeypatch, policy_for, policy_edit
):
    """The row enabled again while the withdrawal read the VPA (an apply may follow), then disabled again
    before it read the HPA: the VPA is left and named in the outcome (it said "already gone" for objects
    still scaling the service), kept on the policy, and the next withdrawal removes it."""
    policy = _applied_three_times(policy_for(NAME))
    real = kube._read
    edits = [lambda: policy_edit(policy, enabled=True), lambda: policy_edit(policy, enabled=False)]

    def reading(api, path, ref):
        if edits:
            edits.pop(0)()
        return real(api, path, ref)

    monkeypatch.setattr(kube, "_read", reading)
    policy_edit(policy, enabled=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured", policy.apply_error
    assert policy.apply_error == (
        f"policy disabled: removed HorizontalPodAutoscaler/{NAME}; left on the cluster: "
        f"VerticalPodAutoscaler/{NAME} (stamped by a later apply); the Deployment keeps its replicas"
    )
    assert "already gone" not in policy.apply_error
    assert VPA_KEY in cluster.objects
    assert [ref["kind"] for ref in services._withdrawable(policy)] == ["VerticalPodAutoscaler"]

    services.policies_reconcile()  # the checker's next pass: disabled, no claim after it: removed
    policy.refresh_from_db()
    assert VPA_KEY not in cluster.objects
    assert policy.apply_error == (
        f"policy disabled: removed VerticalPodAutoscaler/{NAME}; the Deployment keeps its replicas"
    )


def test_a_later_apply_while_enabled_is_still_left(cluster, policy_for):
    """The guard stays: an object stamped by a later generation while the row is enabled again is left."""
    policy = _applied_three_times(policy_for(NAME))
    ScalingPolicy.objects.filter(pk=policy.pk).update(apply_generation=3)
    api = kube.cluster_client()
    try:
        ref = next(ref for ref in policy.applied_objects if ref["kind"] == "HorizontalPodAutoscaler")
        claimed_at = policy.state_changed_at
        enabled = lambda: services._later_apply_possible(policy.pk, claimed_at)  # noqa: E731
        assert kube.delete_object(api, ref, before_generation=3, later_apply=enabled) is None
        ScalingPolicy.objects.filter(pk=policy.pk).update(enabled=False)
        assert kube.delete_object(api, ref, before_generation=3, later_apply=enabled) is True
    finally:
        api.close()
