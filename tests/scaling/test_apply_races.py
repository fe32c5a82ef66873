"""An apply to the cluster racing an edit, a disable or a delete of the same policy, and a second apply.

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py).
The race is made deterministic by doing the concurrent change while the apply's cluster write is in progress
(a wrapper around kube.apply_documents), at the exact point where a real admin edit could land.
"""

import pytest

from apps.scaling import kube, services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)


def _pending_policy(slug: str = "racing") -> ScalingPolicy:
    service = Service.objects.create(name=slug, slug=slug, route_prefix=f"api/{slug}/")
    policy = services.scaling_policy_ensure(service, history_source="synthetic", predictive=False)[0]
    policy.refresh_from_db()
    assert policy.apply_state == "pending"
    return policy


def _during_the_apply(monkeypatch, action) -> list[int]:
    """Runs `action` once the apply has written the cluster, before it records its outcome."""
    real = kube.apply_documents
    calls = []

    def applying(*args, **kwargs):
        done = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            action()
        return done

    monkeypatch.setattr(kube, "apply_documents", applying)
    return calls


def test_a_policy_deleted_during_its_apply_leaves_no_autoscaler_on_the_cluster(cluster, monkeypatch):
    policy = _pending_policy()
    _during_the_apply(monkeypatch, lambda: Service.objects.get(slug="racing").delete())
    services.policy_apply(policy_id=policy.pk)
    assert not ScalingPolicy.objects.filter(pk=policy.pk).exists()
    assert cluster.autoscalers_of("medical-ai", "racing") == []


def test_a_policy_disabled_during_its_apply_has_its_autoscalers_withdrawn(cluster, monkeypatch):
    policy = _pending_policy()

    def disable():
        edited = ScalingPolicy.objects.get(pk=policy.pk)  # as the admin loads it, during the apply
        edited.enabled = False
        edited.save()

    _during_the_apply(monkeypatch, disable)
    done = services.policy_apply(policy_id=policy.pk)
    policy.refresh_from_db()
    assert cluster.autoscalers_of("medical-ai", "racing") == []
    assert policy.apply_state == done.apply_state == "not_configured", policy.apply_error
    assert policy.applied_hash == "" and not services._withdrawable(policy)
    assert services.policy_apply(policy_id=policy.pk).apply_state == "not_configured"  # not applied again


def test_an_edit_during_an_apply_starts_no_second_apply_and_its_manifests_follow(cluster, monkeypatch):
    policy = _pending_policy()
    seen: list[int] = []

    def edit_and_redeliver():
        edited = ScalingPolicy.objects.get(pk=policy.pk)
        edited.max_replicas = 30
        edited.save()
        before = len(cluster.requests)
        second = services.policy_apply(policy_id=policy.pk)  # the checker's delivery, beside the first
        seen.append(len(cluster.requests) - before)
        assert second.apply_state == "applying"

    _during_the_apply(monkeypatch, edit_and_redeliver)
    services.policy_apply(policy_id=policy.pk)
    assert seen == [0]  # the second apply did not write the cluster
    policy.refresh_from_db()
    assert policy.apply_state == "pending" and policy.applied_hash != policy.desired_hash
    assert services.policies_reconcile() == [policy.pk]
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.applied_hash == policy.desired_hash
    with cluster.lock:
        hpa = cluster.objects["autoscaling", "horizontalpodautoscalers", "medical-ai", "racing"]
    assert hpa["spec"]["maxReplicas"] == 30


def test_deleting_a_policy_loaded_before_an_apply_finished_removes_what_that_apply_added(cluster):
    policy = _pending_policy()
    loaded_before = ScalingPolicy.objects.get(pk=policy.pk)  # the admin's delete page, opened earlier
    assert services.policy_apply(policy_id=policy.pk).apply_state == "active"
    assert cluster.autoscalers_of("medical-ai", "racing") == ["racing"]
    loaded_before.delete()
    assert cluster.autoscalers_of("medical-ai", "racing") == []
