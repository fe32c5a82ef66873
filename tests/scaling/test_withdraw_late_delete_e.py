"""A withdrawal's DELETE that reaches the API server late: it is conditional on the object as read.

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py),
which holds a DELETE back until the test lets it through (the request the client gave up on, timed out, that
the API server still carries out later).
"""

import threading
import time

import pytest

from apps.scaling import kube, services

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "withdrawn-late"
HPA_PATH = f"/apis/autoscaling/v2/namespaces/medical-ai/horizontalpodautoscalers/{NAME}"
VPA_PATH = f"/apis/autoscaling.k8s.io/v1/namespaces/medical-ai/verticalpodautoscalers/{NAME}"


def _landed(cluster, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(cluster.landed) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cluster.landed) >= count, cluster.landed


def test_a_withdrawals_delete_landing_after_the_policy_was_applied_again_removes_nothing(
    cluster, settings, policy_for, policy_edit
):
    """The DELETE timed out (the withdrawal FAILED), the admin enabled the policy again and the checker applied
    it, then the DELETE reached the API server: it removed the HPA just applied, the cluster with no HPA while
    the policy said active. It is conditional now (the uid and resourceVersion it read): refused, 409."""
    settings.SCALING_APPLY_TIMEOUT_SECONDS = 1.0
    policy = policy_for(NAME)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    cluster.delete_gate, cluster.gated_paths = threading.Event(), {HPA_PATH}
    try:
        policy_edit(policy, enabled=False)
        services.policies_reconcile()
        policy.refresh_from_db()
        assert policy.apply_state == "failed" and "not withdrawn yet" in policy.apply_error, policy.apply_error
        # urllib3 sends a DELETE that timed out again (its default retries): each is held.
        held = [r["path"] for r in cluster.requests if r["method"] == "DELETE" and r["path"] == HPA_PATH]
        assert held and [path for path, _ in cluster.landed] == [VPA_PATH]  # the VPA went

        policy_edit(policy, enabled=True)
        services.policies_reconcile()
        policy.refresh_from_db()
        assert policy.apply_state == "active", policy.apply_error
    finally:
        cluster.delete_gate.set()
    _landed(cluster, 1 + len(held))
    assert cluster.landed[1:] == [(HPA_PATH, 409)] * len(held)
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]
    policy.refresh_from_db()
    assert policy.apply_state == "active"


def test_a_withdrawal_leaves_an_object_a_later_apply_stamped(cluster, policy_for):
    """An apply that took over a withdrawal stuck past SCALING_APPLY_STUCK_SECONDS stamps its objects with a
    later generation: the withdrawal, going on, leaves them (and keeps them recorded)."""
    policy = policy_for(NAME)
    services.policies_reconcile()
    policy.refresh_from_db()
    api = kube.cluster_client()
    try:
        ref = next(ref for ref in policy.applied_objects if ref["kind"] == "HorizontalPodAutoscaler")
        assert kube.delete_object(api, ref, before_generation=policy.apply_generation) is None
        assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]
        assert kube.delete_object(api, ref, before_generation=policy.apply_generation + 1) is True
    finally:
        api.close()
    assert cluster.autoscalers_of("medical-ai", NAME) == []


def test_a_delete_refused_for_a_status_written_meanwhile_is_read_and_tried_again(cluster, policy_for, policy_edit):
    """The HPA controller writes the HPA's status every 15 s: a DELETE refused for the resourceVersion it read
    (409) reads the object again and deletes it as it is now."""
    policy = policy_for(NAME)
    services.policies_reconcile()
    policy.refresh_from_db()
    key = ("autoscaling", "horizontalpodautoscalers", "medical-ai", NAME)
    real = cluster._delete
    calls = []

    def status_written_first(path, preconditions):
        if path == HPA_PATH and not calls:  # the controller's status write lands between the read and the DELETE
            cluster.objects[key]["metadata"]["resourceVersion"] = "status-1"
            calls.append(path)
        return real(path, preconditions)

    cluster._delete = status_written_first
    policy_edit(policy, enabled=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert calls and [landed for landed in cluster.landed if landed[0] == HPA_PATH] == [
        (HPA_PATH, 409),
        (HPA_PATH, 200),
    ]
    assert policy.apply_state == "not_configured", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == []


def test_credentials_without_get_still_withdraw(cluster, caplog, policy_for, policy_edit):
    """A Role copied before `get` was granted: the read is refused (403) and the DELETE goes without
    preconditions, as before, the log saying what to grant, rather than the withdrawal failing for good."""
    policy = policy_for(NAME)
    services.policies_reconcile()
    cluster.reads_forbidden = True
    policy_edit(policy, enabled=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == []
    assert "grant `get`" in caplog.text
    # No resourceVersion to go on: the uid recorded at the apply is the only precondition.
    deletes = [r["body"].get("preconditions") or {} for r in cluster.requests if r["method"] == "DELETE"]
    assert deletes and all(set(preconditions) == {"uid"} for preconditions in deletes)
