"""Removals delete the object that was applied (its uid, recorded from the apply's answer), not whatever holds
its name when a retry comes.

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py).
"""

import copy

import pytest

from apps.scaling import services, tasks
from tests.scaling.removal_support import HPA_KEY, NAME, NS, VPA_KEY, applied, deleted_with_its_removal_failing

pytestmark = pytest.mark.django_db(transaction=True)


def _made_again_by_hand(cluster, key) -> str:
    """The object deleted and created again under its name (kubectl, another tool): a new uid."""
    with cluster.lock:
        again = copy.deepcopy(cluster.objects.pop(key))
        again["metadata"]["uid"] = "made-by-hand"
        again["metadata"]["annotations"] = {}
        cluster.objects[key] = again
    return "made-by-hand"


def test_applied_objects_keep_the_uid_the_api_server_gave(cluster):
    policy = applied()
    recorded = {(ref["kind"], ref["name"]): ref.get("uid") for ref in policy.applied_objects}
    assert recorded[("HorizontalPodAutoscaler", NAME)] == cluster.objects[HPA_KEY]["metadata"]["uid"]
    assert recorded[("VerticalPodAutoscaler", NAME)] == cluster.objects[VPA_KEY]["metadata"]["uid"]
    assert all(recorded.values())
    services.apply_requested(policy)
    services.policy_apply(policy_id=policy.pk)  # applied again: one entry per object, not one per apply
    policy.refresh_from_db()
    assert len(policy.applied_objects) == len(recorded)


def test_a_retried_removal_after_the_policy_was_recreated_leaves_the_new_policys_autoscalers(cluster):
    """The delete's removal failed on the VPA (503) and was retried after a new policy for the service was
    applied: the retry deleted the new policy's HPA as read, the new policy active with no HPA."""
    policy = applied()
    service = policy.service
    refs = services._withdrawable(policy)
    deleted_with_its_removal_failing(cluster, policy)
    recreated = applied(service)  # its apply takes over the objects under the name
    outcome = tasks.remove_objects.run(refs)  # the retry
    assert cluster.autoscalers_of(NS, NAME) == [NAME]
    assert VPA_KEY in cluster.objects
    assert f"left HorizontalPodAutoscaler/{NAME}: the scaling policy of {NAME} applies it now" in outcome
    recreated.refresh_from_db()
    assert recreated.apply_state == "active"


def test_a_retried_removal_leaves_an_object_made_again_by_hand_under_the_name(cluster):
    policy = applied()
    refs = services._withdrawable(policy)
    deleted_with_its_removal_failing(cluster, policy)
    _made_again_by_hand(cluster, HPA_KEY)
    outcome = tasks.remove_objects.run(refs)
    assert HPA_KEY in cluster.objects and cluster.objects[HPA_KEY]["metadata"]["uid"] == "made-by-hand"
    assert VPA_KEY not in cluster.objects  # the one applied: removed
    assert outcome == [
        f"VerticalPodAutoscaler/{NAME}",
        f"left HorizontalPodAutoscaler/{NAME}: not the object applied (another was created under its name since)",
    ]


def test_a_removal_with_reads_forbidden_still_deletes_only_the_uid_applied(cluster):
    """Credentials without `get`: the DELETE went without preconditions; with the uid recorded, it is that uid."""
    policy = applied()
    refs = services._withdrawable(policy)
    deleted_with_its_removal_failing(cluster, policy)
    _made_again_by_hand(cluster, HPA_KEY)
    cluster.reads_forbidden = True
    outcome = tasks.remove_objects.run(refs)
    assert HPA_KEY in cluster.objects and cluster.objects[HPA_KEY]["metadata"]["uid"] == "made-by-hand"
    assert VPA_KEY not in cluster.objects
    assert f"left HorizontalPodAutoscaler/{NAME}" in outcome[-1]


def test_refs_recorded_before_uids_are_removed_as_read(cluster):
    """Today's behaviour for a removal queued before this change (no uid): whatever holds the name goes."""
    policy = applied()
    refs = [{key: value for key, value in ref.items() if key != "uid"} for ref in services._withdrawable(policy)]
    deleted_with_its_removal_failing(cluster, policy)
    _made_again_by_hand(cluster, HPA_KEY)
    assert tasks.remove_objects.run(refs) == [f"VerticalPodAutoscaler/{NAME}", f"HorizontalPodAutoscaler/{NAME}"]
    assert cluster.autoscalers_of(NS, NAME) == []


def test_a_withdrawal_leaves_an_object_made_again_by_hand_and_names_it(cluster):
    policy = applied()
    _made_again_by_hand(cluster, HPA_KEY)
    policy.refresh_from_db()
    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert HPA_KEY in cluster.objects and cluster.objects[HPA_KEY]["metadata"]["uid"] == "made-by-hand"
    assert VPA_KEY not in cluster.objects
    assert policy.apply_state == "not_configured"
    assert policy.apply_error == (
        f"policy disabled: removed VerticalPodAutoscaler/{NAME}; left on the cluster: HorizontalPodAutoscaler/{NAME} "
        "(not the object applied: another was created under its name since); the Deployment keeps its replicas"
    )
    assert services._withdrawable(policy) == []  # the one applied is gone: nothing of this policy's is left
