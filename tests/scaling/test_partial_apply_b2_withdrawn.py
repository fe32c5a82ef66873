"""An apply that fails after its dry runs has put part of the manifests on the cluster: a ScaledObject and a
VPA among them. They were only named in the error, not kept in applied_objects, so disabling or deleting the
policy left them scaling the service. The fake API server stands in for the cluster: none exists here."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from controlplane.celery import app as celery_app
from tests.scaling.fake_servers import FakeKubernetes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(settings, tmp_path):
    call_command("seed_demo", stdout=StringIO())
    fake = FakeKubernetes()
    settings.SCALING_KUBECONFIG = fake.kubeconfig(tmp_path / "kubeconfig")
    settings.SCALING_PROMETHEUS_URL = "https://:secret-token@prometheus.example.org"  # a TriggerAuthentication
    celery_app.conf.task_always_eager = True
    yield fake
    celery_app.conf.task_always_eager = False
    fake.stop()


def _kinds(cluster, name: str) -> set[str]:
    with cluster.lock:
        return {
            obj["kind"]
            for obj in cluster.objects.values()
            if obj["metadata"]["namespace"] == "medical-ai" and obj["metadata"]["name"] == name
        }


def _failed_half_way(cluster) -> ScalingPolicy:
    """clinical-api with KEDA and a VPA; the TriggerAuthentication refused (RBAC: 403) on the real apply,
    after every dry run passed and the VPA and ScaledObject were applied."""
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    cluster.fail_apply["TriggerAuthentication"] = 403
    policy = ScalingPolicy.objects.get(service__slug="clinical-api")
    policy.keda_enabled = True
    policy.target_rps_per_pod = 30
    policy.vpa_mode = "Auto"
    policy.target_memory_pct = None
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed", policy.apply_error
    assert "HTTP 403" in policy.apply_error and "ScaledObject/clinical-api" in policy.apply_error
    assert {"ScaledObject", "VerticalPodAutoscaler"} <= _kinds(cluster, "clinical-api")
    assert cluster.autoscalers_of("medical-ai", "clinical-api")  # KEDA's HPA scales the Deployment
    return policy


def test_a_failed_apply_keeps_what_it_applied_before_it_failed(cluster):
    policy = _failed_half_way(cluster)
    kept = {(ref["kind"], ref["name"]) for ref in policy.applied_objects}
    assert {("ScaledObject", "clinical-api"), ("VerticalPodAutoscaler", "clinical-api")} <= kept
    assert ("TriggerAuthentication", "clinical-api") not in kept  # refused: not on the cluster
    assert policy.applied_hash == ""  # nothing counts as applied: the retry applies them all


def test_disabling_after_a_failed_apply_withdraws_its_autoscalers(cluster):
    policy = _failed_half_way(cluster)
    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []
    assert _kinds(cluster, "clinical-api") == {"Deployment", "Service", "PodDisruptionBudget"}


def test_deleting_after_a_failed_apply_withdraws_its_autoscalers(cluster):
    policy = _failed_half_way(cluster)
    policy.delete()
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []
    assert _kinds(cluster, "clinical-api") == {"Deployment", "Service", "PodDisruptionBudget"}


def test_the_retry_after_a_failed_apply_applies_everything(cluster):
    policy = _failed_half_way(cluster)
    del cluster.fail_apply["TriggerAuthentication"]
    services.apply_requested(policy)
    policy = services.policy_apply(policy_id=policy.pk)
    assert policy.apply_state == "active", policy.apply_error
    assert "TriggerAuthentication" in _kinds(cluster, "clinical-api")
    assert [r for r in cluster.requests if r["method"] == "DELETE"] == []  # nothing of its own removed
