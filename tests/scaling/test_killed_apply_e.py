"""A worker killed in the middle of an apply, after the API server created objects and before the outcome was
recorded: what the apply was about to send is recorded first, and the withdrawal, a delete and the apply
taking over find it there.

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py).
A SIGKILL is stood in for by a BaseException raised once the cluster was written: like the kill, it leaves
before anything else of the apply runs (no `except Exception` takes it).
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.scaling import kube, services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "killed-mid-apply"


class Killed(BaseException):
    """Stands for the worker's SIGKILL: nothing of the apply after it runs."""


@pytest.fixture
def killed_apply(cluster, monkeypatch, policy_for) -> ScalingPolicy:
    """A policy whose first apply's worker was killed once the API server had created its objects, left
    APPLYING for longer than a worker can take."""
    policy = policy_for(NAME)
    real = kube.apply_documents

    def applying(documents, **options):
        real(documents, **options)
        raise Killed

    monkeypatch.setattr(kube, "apply_documents", applying)
    with pytest.raises(Killed):
        services.policy_apply(policy_id=policy.pk)
    monkeypatch.setattr(kube, "apply_documents", real)
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]
    stuck_since = timezone.now() - timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS + 60)
    ScalingPolicy.objects.filter(pk=policy.pk).update(state_changed_at=stuck_since)
    policy.refresh_from_db()
    assert policy.apply_state == "applying"
    return policy


def test_an_apply_killed_after_the_cluster_created_its_objects_is_withdrawn_when_disabled(
    cluster, killed_apply, policy_edit
):
    """The objects were created, the worker killed before the outcome was recorded: nothing named them, and
    disabling the policy left its HPA and VPA scaling the service. What an apply is about to send is recorded
    before it sends it."""
    policy = killed_apply
    kinds = {ref["kind"] for ref in policy.applied_objects}
    assert {"HorizontalPodAutoscaler", "VerticalPodAutoscaler"} <= kinds
    policy_edit(policy, enabled=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == []
    assert not [key for key in cluster.objects if key[1] == "verticalpodautoscalers"]


def test_an_apply_killed_after_the_cluster_created_its_objects_is_withdrawn_when_deleted(cluster, killed_apply):
    Service.objects.get(slug=NAME).delete()
    assert cluster.autoscalers_of("medical-ai", NAME) == []
    assert not [key for key in cluster.objects if key[1] == "verticalpodautoscalers"]


def test_the_apply_taking_over_a_killed_one_replaces_the_hpa_it_left(cluster, killed_apply, policy_edit):
    """KEDA switched on meanwhile: the apply taking over deletes the HPA the killed apply created before it
    applies the ScaledObject (KEDA's webhook refused the ScaledObject beside an HPA nothing here knew of)."""
    policy = killed_apply
    policy_edit(policy, keda_enabled=True)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == [f"keda-hpa-{NAME}"]
    assert "HorizontalPodAutoscaler" not in {ref["kind"] for ref in policy.applied_objects}


def test_a_refused_dry_run_leaves_nothing_recorded_as_applied(cluster, policy_for):
    """What an apply meant to send, and never sent (a dry run refused), is not kept as applied."""
    cluster.fail["VerticalPodAutoscaler"] = 422
    policy = policy_for(NAME)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and "HTTP 422" in policy.apply_error
    assert policy.applied_objects == []
