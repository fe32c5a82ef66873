"""A policy applied to the scaling tests' fake cluster, then deleted while its removal fails: the removal tests'
start (test_q_removal_uid, test_e2_removal_retry_refused). No Kubernetes API server can run here: the cluster is
the fake one on loopback (tests/scaling/fake_servers.py)."""

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

NAME = "recreated"
NS = "medical-ai"
HPA_KEY = ("autoscaling", "horizontalpodautoscalers", NS, NAME)
VPA_KEY = ("autoscaling.k8s.io", "verticalpodautoscalers", NS, NAME)


def applied(service: Service | None = None) -> ScalingPolicy:
    service = service or Service.objects.create(name=NAME, slug=NAME, route_prefix=f"api/{NAME}/")
    policy = services.scaling_policy_ensure(service, history_source="synthetic", predictive=False)[0]
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    return policy


def deleted_with_its_removal_failing(cluster, policy: ScalingPolicy) -> None:
    """The delete's removal (run at commit, eagerly here) fails on the VPA, first: it is retried later."""
    cluster.fail["VerticalPodAutoscaler"] = 503
    policy.delete()
    cluster.fail.clear()
    assert cluster.autoscalers_of(NS, NAME) == [NAME] and VPA_KEY in cluster.objects
