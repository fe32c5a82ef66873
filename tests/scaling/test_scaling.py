"""Scaling with the database: policies, forecasts and replica plans for the demo services, export, the
apply state machine against a fake API server (no cluster exists here), emergency mode, Prometheus
history from a fake Prometheus, the brief's prediction API, and the optimizer's scaling step."""

import json
import math
from datetime import UTC, datetime, timedelta
from io import StringIO

import kubernetes_validate
import pandas as pd
import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.metrics.models import Alert, AlertRule, RequestRollup
from apps.metrics.recorder import new_histogram
from apps.scaling import kube, manifests, services
from apps.scaling.history import HistoryUnavailable, hourly_history
from apps.scaling.models import ScalingPolicy, ScalingRecommendation, WorkloadForecast
from apps.scaling.prediction import WorkloadPredictionService
from apps.services.models import Service
from tests.scaling.fake_servers import FakePrometheus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _short_history(settings):
    settings.SCALING_HISTORY_DAYS = 10  # enough for every candidate model, quick to backtest
    settings.SCALING_BACKTEST_FOLDS = 1


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=StringIO())
    return ScalingPolicy.objects.select_related("service")


def test_demo_services_get_policies_forecasts_and_a_plan(demo):
    assert {p.service.slug for p in demo} == {"clinical-api", "fhir-api", "clinical-assistant", "embeddings"}
    assert all(p.history_source == "synthetic" and p.min_replicas == 2 and p.max_replicas == 50 for p in demo)
    out = StringIO()
    call_command("scaling", "forecast", "--service", "clinical-api", stdout=out)
    service = Service.objects.get(slug="clinical-api")
    forecasts = {f.metric: f for f in service.forecasts.all()}
    assert set(forecasts) == set(WorkloadForecast.Metric.values)
    rate = forecasts["request_rate"]
    assert len(rate.points) == 24 and all(p["p10"] <= p["p50"] <= p["p90"] for p in rate.points)
    assert rate.scores["candidates"] and rate.history_hours == 240
    assert [peak["name"] for peak in rate.patterns["peaks"]] == ["morning rounds", "afternoon rounds"]
    plan = service.scaling_recommendations.get()
    assert 2 <= plan.min_replicas <= plan.peak_replicas <= 50 and len(plan.hours) == 24
    assert any("morning rounds" in reason for reason in plan.reasons)
    assert "plan      clinical-api" in out.getvalue()


def _forecast(service: Service, p90: list[float]) -> WorkloadForecast:
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    points = [{"at": (start + timedelta(hours=i)).isoformat(), "p10": v / 2, "p50": v * 0.8, "p90": v}
              for i, v in enumerate(p90)]  # fmt: skip
    return WorkloadForecast.objects.create(service=service, metric="request_rate", source="metrics", history_hours=240,
                                           model="gradient_boosting", points=points)  # fmt: skip


def test_replicas_follow_the_p90_with_lead_time_capacity_and_limits(demo):
    policy = demo.get(service__slug="clinical-api")
    policy.replica_capacity_rps, policy.target_utilization, policy.lead_minutes, policy.max_replicas = 10, 0.5, 30, 12
    policy.save()
    p90 = [10.0] * 6 + [40.0, 50.0] + [200.0] + [10.0] * 15
    plan = services.recommendation_create(policy, _forecast(policy.service, p90))
    replicas = [hour["replicas"] for hour in plan.hours]
    # 5 req/s usable per replica; each hour also covers the next (30 min lead).
    assert replicas[:5] == [2] * 5
    assert replicas[5] == math.ceil(40 / 5) and replicas[6] == math.ceil(50 / 5)
    assert replicas[7] == 12 and replicas[8] == 12  # 40 needed, capped at the maximum
    assert plan.hours[8]["needed"] == 40 and any("above the maximum of 12" in r for r in plan.reasons)

    services.emergency_mode_set(policy, on=True)
    policy.emergency_min_replicas = 6
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, p90))
    assert min(hour["replicas"] for hour in plan.hours) == 6 and plan.emergency


def _stress_run(service: Service, knee_rps: float) -> None:
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun

    plan = BenchmarkPlan.objects.create(name=f"{service.slug} stress", service=service, kind="stress")
    BenchmarkRun.objects.create(plan=plan, status=BenchmarkRun.Status.SUCCEEDED,
                                findings={"stress": {"knee_rps": knee_rps, "knee_users": 80}})  # fmt: skip


def test_a_stress_knee_is_the_whole_service_and_is_split_over_the_replicas_that_served_it(demo):
    """The stress benchmark drives the service's URL: its knee (120 req/s on 4 replicas) is 30 req/s a replica.
    Taken as one replica's capacity it planned 2 replicas where 7 are needed."""
    policy = demo.get(service__slug="clinical-api")
    policy.target_utilization, policy.lead_minutes, policy.min_replicas = 0.5, 0, 1
    policy.save()
    _stress_run(policy.service, knee_rps=120.0)
    p90 = [100.0] * 24

    policy.stress_test_replicas = 4
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, p90))
    assert plan.peak_replicas == math.ceil(100 / (120 / 4 * 0.5)) == 7
    assert any("knee of 120.0 req/s over the 4 replica(s)" in reason for reason in plan.reasons)

    # Without the count the knee cannot be split: the policy's own figure is used, and the reasons say why.
    policy.stress_test_replicas, policy.replica_capacity_rps = None, 20.0
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, p90))
    assert plan.peak_replicas == math.ceil(100 / (20 * 0.5)) == 10
    assert any("knee of 120.0 req/s is the whole service's" in reason for reason in plan.reasons)


def test_a_per_pod_target_above_a_replica_s_capacity_is_named_in_the_plan(demo):
    """An HPA told to add a pod past 40 req/s per pod, for replicas that serve 30 inside the SLO (a knee of
    120 on 4 replicas), lets every pod run past its knee before scaling out; the plan said nothing of it."""
    policy = demo.get(service__slug="clinical-api")
    policy.target_utilization, policy.stress_test_replicas, policy.target_rps_per_pod = 0.5, 4, 40.0
    policy.save()
    _stress_run(policy.service, knee_rps=120.0)
    plan = services.recommendation_create(policy, _forecast(policy.service, [100.0] * 24))
    assert any("past 40 req/s per pod, above the 30.0 req/s" in reason and "to 15.0 or less" in reason
               for reason in plan.reasons)  # fmt: skip

    policy.target_rps_per_pod = 15.0
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, [100.0] * 24))
    assert not any("req/s per pod" in reason for reason in plan.reasons)


def test_a_per_pod_target_between_the_planned_load_and_capacity_is_named_in_the_plan(demo):
    """A target of 24 req/s per pod for replicas that serve 30 inside the SLO, planned at 50% (15): inside the
    SLO, but every pod runs at 80% before the autoscaler adds one, and the plan kept quiet about it."""
    policy = demo.get(service__slug="clinical-api")
    policy.target_utilization, policy.stress_test_replicas, policy.target_rps_per_pod = 0.5, 4, 24.0
    policy.save()
    _stress_run(policy.service, knee_rps=120.0)
    plan = services.recommendation_create(policy, _forecast(policy.service, [100.0] * 24))
    named = [reason for reason in plan.reasons if "past 24 req/s per pod" in reason]
    assert len(named) == 1 and "80% of a replica's capacity, above the planned 50%" in named[0]
    assert "to 15.0" in named[0]


def test_a_plan_says_it_is_advice_only_when_no_keda_carries_it_to_the_cluster(demo):
    """Without KEDA the manifests hold a plain HPA, which has one minimum for every hour: the plan's replicas
    never reach the cluster, yet it read as if predictive scaling were in force. Its reasons say so."""
    policy = demo.get(service__slug="clinical-api")
    policy.keda_enabled = False
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, [100.0] * 24))
    assert any(reason.startswith("Advice only: without KEDA") for reason in plan.reasons)
    assert not any("ready before it" in reason for reason in plan.reasons)
    assert "cron" not in json.dumps(services.policy_manifests(policy))

    policy.keda_enabled = True
    policy.save()
    plan = services.recommendation_create(policy, _forecast(policy.service, [100.0] * 24))
    assert not any(reason.startswith("Advice only") for reason in plan.reasons)
    assert any("so replicas are ready before it" in reason for reason in plan.reasons)
    assert "cron" in json.dumps(services.policy_manifests(policy))


def test_stress_test_replicas_below_one_is_a_field_error(demo):
    policy = demo.get(service__slug="clinical-api")
    policy.stress_test_replicas = 0
    with pytest.raises(ValidationError) as raised:
        policy.full_clean()
    assert "stress_test_replicas" in raised.value.message_dict


def test_export_writes_valid_manifests_for_every_policy(demo, tmp_path):
    out = StringIO()
    call_command("scaling", "export", "--out", str(tmp_path), stdout=out)
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == 4 * 5
    for path in files:
        document = yaml.safe_load(path.read_text())
        if document["apiVersion"] in ("apps/v1", "v1", "autoscaling/v2", "policy/v1"):
            kubernetes_validate.validate(document, "1.33", strict=True)
    assert "20 manifests written" in out.getvalue()


def test_a_service_whose_slug_is_no_kubernetes_name_is_exported_and_applied_under_a_valid_one(cluster, tmp_path):
    """A slug with upper case and '_' (the registry takes any slug) named every object, and the API server
    refused them all while the offline validation passed: the objects get a valid name of the slug."""
    service = Service.objects.create(name="CT scanner triage", slug="CT_Scanner_Triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False)
    call_command("scaling", "export", "--out", str(tmp_path), stdout=StringIO())
    documents = [yaml.safe_load(path.read_text()) for path in tmp_path.glob("*.yaml")]
    names = {document["metadata"]["name"] for document in documents}
    assert len(names) == 1 and names.pop().startswith("ct-scanner-triage-")
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert all("/ct-scanner-triage-" in request["path"] for request in cluster.requests)


def test_an_export_removes_the_manifests_no_policy_makes_any_more(demo, tmp_path):
    """A disabled policy's files stayed in the folder from the export before, and `kubectl apply -f` on it
    kept applying the service's old HPA. A whole export removes what it wrote earlier, nothing else."""
    call_command("scaling", "export", "--out", str(tmp_path), stdout=StringIO())
    (tmp_path / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: medical-ai}\n")
    (tmp_path / "notes.yaml").write_text("- not: a manifest\n")
    ScalingPolicy.objects.filter(service__slug="embeddings").update(enabled=False)
    call_command("scaling", "export", "--out", str(tmp_path), "--service", "clinical-api", stdout=StringIO())
    assert (tmp_path / "embeddings-hpa.yaml").exists()  # a partial export removes nothing
    call_command("scaling", "export", "--out", str(tmp_path), stdout=StringIO())
    names = {path.name for path in tmp_path.glob("*.yaml")}
    assert not any(name.startswith("embeddings-") for name in names)
    assert {"namespace.yaml", "notes.yaml", "clinical-api-hpa.yaml"} <= names and len(names) == 3 * 5 + 2


def test_an_edit_that_would_be_refused_is_not_exported(demo, tmp_path):
    ScalingPolicy.objects.filter(service__slug="embeddings").update(scale_up_period_seconds=0)
    with pytest.raises(Exception, match="periodSeconds 0"):
        call_command("scaling", "export", "--out", str(tmp_path), stdout=StringIO())
    assert not list(tmp_path.glob("*.yaml"))


def test_apply_dry_runs_then_applies_and_reaches_active(demo, cluster):
    policy = demo.get(service__slug="clinical-api")
    policy.save()  # a cluster is configured now: the manifests are due
    policy.refresh_from_db()
    assert policy.apply_state == "pending"
    # The other demo policies learn of the cluster on this pass too: all three are applied.
    assert sorted(services.policies_reconcile()) == sorted(p.pk for p in demo)
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.applied_hash == policy.desired_hash
    mine = [r for r in cluster.requests if r["path"].endswith("/clinical-api")]
    assert [r["query"].get("dryRun") for r in mine] == ["All"] * 5 + [None] * 5  # every dry run before any apply
    assert all(r["query"]["fieldManager"] == "medical-ai-control-plane" and r["query"]["force"] == "true" for r in mine)
    assert all(r["content_type"] == "application/apply-patch+yaml" for r in mine)
    assert mine[0]["authorization"] == "Bearer test-token"
    assert {r["path"] for r in mine} >= {
        "/apis/autoscaling/v2/namespaces/medical-ai/horizontalpodautoscalers/clinical-api",
        "/apis/autoscaling.k8s.io/v1/namespaces/medical-ai/verticalpodautoscalers/clinical-api",
    }

    seen = len(cluster.requests)
    assert services.policies_reconcile() == []  # nothing changed: nothing sent
    assert len(cluster.requests) == seen
    policy.max_replicas = 30
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active" and len(cluster.requests) == seen + 10


def test_a_refused_dry_run_applies_nothing_and_is_retried_with_backoff(demo, cluster):
    cluster.fail["HorizontalPodAutoscaler"] = 422
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    policy = demo.get(service__slug="clinical-api")
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and "HTTP 422" in policy.apply_error and policy.apply_attempts == 1
    assert all(r["query"].get("dryRun") == "All" for r in cluster.requests)  # nothing was really applied

    assert services.policies_reconcile() == []  # backing off
    del cluster.fail["HorizontalPodAutoscaler"]
    assert services.policies_reconcile(now=timezone.now() + timedelta(seconds=31)) == [policy.pk]
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.apply_attempts == 2


def test_an_apply_failing_after_its_dry_runs_says_what_it_left_applied_and_claims_nothing(demo, cluster):
    """The API server refuses the HPA (RBAC: 403) after every dry run passed: the Deployment, Service, PDB and
    VPA are on the cluster by then. The failure said only the HPA's error, as if nothing had been applied."""
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    cluster.fail_apply["HorizontalPodAutoscaler"] = 403
    policy = demo.get(service__slug="clinical-api")
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and policy.applied_hash == ""
    assert policy.apply_error.startswith("HorizontalPodAutoscaler clinical-api: HTTP 403")
    assert policy.apply_error.endswith(
        "(applied before it: Deployment/clinical-api, Service/clinical-api, PodDisruptionBudget/clinical-api, "
        "VerticalPodAutoscaler/clinical-api; not the rest)"
    )

    del cluster.fail_apply["HorizontalPodAutoscaler"]  # RBAC fixed: the retry applies them all
    services.policies_reconcile(now=timezone.now() + timedelta(seconds=31))
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.applied_hash == policy.desired_hash


HPA_PATH = "/apis/autoscaling/v2/namespaces/medical-ai/horizontalpodautoscalers/clinical-api"
SCALED_OBJECT_PATH = "/apis/keda.sh/v1alpha1/namespaces/medical-ai/scaledobjects/clinical-api"


def _applied_alone(demo, cluster) -> ScalingPolicy:
    """clinical-api's manifests applied (a plain HPA), the other demo policies off."""
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    policy = demo.get(service__slug="clinical-api")
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active" and cluster.autoscalers_of("medical-ai", "clinical-api") == ["clinical-api"]
    assert [r for r in cluster.requests if r["method"] == "DELETE"] == []  # never applied: nothing to remove
    return policy


def test_switching_to_keda_and_back_removes_the_autoscaler_replaced_before_its_successors_dry_run(demo, cluster):
    """The plain HPA was deleted only after the ScaledObject's dry run and apply: against KEDA's webhook
    (the fake API server's, no cluster exists here) the ScaledObject's dry run was refused while the HPA
    was there, and the policy failed until its attempts ran out. Once every other dry run has passed, the
    HPA is deleted, then the ScaledObject is dry-run and applied (KEDA makes its own HPA for it); switching
    back deletes the ScaledObject (KEDA's HPA with it) before the plain HPA's dry run. KEDA's webhook
    refuses a ScaledObject, dry run included, while an HPA it does not own scales the same Deployment
    (keda.sh/docs/concepts/admission-webhooks)."""
    policy = _applied_alone(demo, cluster)
    assert {ref["kind"] for ref in policy.applied_objects} >= {"HorizontalPodAutoscaler", "Deployment"}
    # The fake's webhook refuses a ScaledObject's dry run while the plain HPA scales its Deployment.
    api = kube.cluster_client()
    try:
        with pytest.raises(kube.ApplyError, match="HTTP 403") as refused:
            spec = manifests.ServiceScaling(name="clinical-api", namespace="medical-ai", keda_enabled=True)
            kube.server_side_apply(api, manifests.scaled_object(spec), dry_run=True)
    finally:
        api.close()
    assert "vscaledobject.kb.io" in str(refused.value)
    assert (
        "denied the request: the workload 'clinical-api' of type 'apps/v1.Deployment' is already managed by the "
        "hpa 'clinical-api'"
    ) in str(refused.value)

    seen = len(cluster.requests)
    policy.keda_enabled = True
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.apply_attempts == 1, policy.apply_error
    assert cluster.deleted == [HPA_PATH]
    assert policy.apply_error.endswith("removed HorizontalPodAutoscaler/clinical-api")
    assert "HorizontalPodAutoscaler" not in {ref["kind"] for ref in policy.applied_objects}
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["keda-hpa-clinical-api"]
    sent = [(r["method"], r["kind"], r["query"].get("dryRun")) for r in cluster.requests[seen:]]
    assert sent == [
        ("PATCH", kind, "All") for kind in ("Deployment", "Service", "PodDisruptionBudget", "VerticalPodAutoscaler")
    ] + [
        ("DELETE", None, None),
        ("PATCH", "ScaledObject", "All"),
    ] + [
        ("PATCH", kind, None)
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "VerticalPodAutoscaler", "ScaledObject")
    ]

    seen = len(cluster.requests)
    policy.keda_enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.deleted == [HPA_PATH, SCALED_OBJECT_PATH]
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["clinical-api"]
    hpa_dry_run = next(
        i for i, r in enumerate(cluster.requests) if i >= seen and r["kind"] == "HorizontalPodAutoscaler"
    )
    assert cluster.requests[hpa_dry_run]["query"]["dryRun"] == "All"
    assert cluster.requests[hpa_dry_run - 1]["path"] == SCALED_OBJECT_PATH  # the DELETE, just before

    # A moved namespace: the old objects are named, not deleted under the pods still starting elsewhere.
    policy.namespace = "medical-ai-2"
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active" and len(cluster.deleted) == 2
    assert "left on the cluster under their old name or namespace" in policy.apply_error
    assert "Deployment/medical-ai/clinical-api" in policy.apply_error


def _kinds_on_cluster(cluster, namespace: str, name: str) -> set[str]:
    with cluster.lock:
        return {
            obj["kind"]
            for obj in cluster.objects.values()
            if obj["metadata"]["namespace"] == namespace and obj["metadata"]["name"] == name
        }


def test_a_disabled_policy_withdraws_its_autoscalers_and_enabled_again_applies_them(demo, cluster):
    """Disabling a policy left its HPA (or ScaledObject, with the forecast's cron windows) and VPA scaling the
    service on the cluster, by a plan nothing kept any more. They are removed; the Deployment, Service and
    disruption budget stay (the service keeps running at its replicas). The fake API server stands in for
    the cluster: none exists here."""
    policy = _applied_alone(demo, cluster)
    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []
    assert _kinds_on_cluster(cluster, "medical-ai", "clinical-api") == {"Deployment", "Service", "PodDisruptionBudget"}
    assert policy.apply_state == "not_configured"
    assert policy.apply_error == (
        "policy disabled: removed VerticalPodAutoscaler/clinical-api, HorizontalPodAutoscaler/clinical-api; "
        "the Deployment keeps its replicas"
    )
    deletes = len(cluster.deleted)
    services.policies_reconcile()  # nothing left to withdraw: nothing sent
    assert len(cluster.deleted) == deletes

    policy.enabled = True
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["clinical-api"]


def test_a_withdrawal_the_cluster_refuses_fails_and_is_retried_with_backoff(demo, cluster):
    policy = _applied_alone(demo, cluster)
    cluster.fail["HorizontalPodAutoscaler"] = 403
    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and policy.apply_attempts == 1
    assert policy.apply_error.startswith("policy disabled; its autoscaling not withdrawn yet: HorizontalPodAutoscaler")
    assert services.policies_reconcile() == []  # backing off
    assert "VerticalPodAutoscaler" not in _kinds_on_cluster(cluster, "medical-ai", "clinical-api")  # went first
    # Enabled again before the withdrawal went through: everything is applied again, the VPA included (its
    # old digest read as applied had made it ACTIVE with the VPA missing).
    policy.enabled = True
    policy.save()
    del cluster.fail["HorizontalPodAutoscaler"]
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert "VerticalPodAutoscaler" in _kinds_on_cluster(cluster, "medical-ai", "clinical-api")
    policy.enabled = False
    policy.save()
    services.policies_reconcile(now=timezone.now() + timedelta(seconds=31))
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured" and cluster.autoscalers_of("medical-ai", "clinical-api") == []


def test_a_delete_while_the_broker_is_away_still_succeeds_and_logs_what_to_remove(demo, cluster, monkeypatch, caplog):
    """The removal was sent on commit: a broker that refused it raised into the admin's delete, after the delete
    had committed (an error page for a done delete), with nothing left to retry from."""
    from kombu.exceptions import OperationalError

    from apps.scaling import tasks

    _applied_alone(demo, cluster)

    def broker_away(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.remove_objects, "delay", broker_away)  # the broker is stopped: nothing here stops it
    Service.objects.get(slug="clinical-api").delete()
    assert not Service.objects.filter(slug="clinical-api").exists()
    assert (
        "remove them: VerticalPodAutoscaler/medical-ai/clinical-api, HorizontalPodAutoscaler/medical-ai/clinical-api"
        in caplog.text
    )


def test_deleting_a_service_removes_its_autoscalers_from_the_cluster(demo, cluster):
    """Deleting the service (its policy with it) left the autoscalers scaling a service the product no longer
    knows. They go once the delete commits; the workload stays."""
    _applied_alone(demo, cluster)
    Service.objects.get(slug="clinical-api").delete()
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == []
    assert _kinds_on_cluster(cluster, "medical-ai", "clinical-api") == {"Deployment", "Service", "PodDisruptionBudget"}


def test_a_successor_refused_after_the_autoscaler_went_says_so_and_the_retry_applies_it(demo, cluster):
    """A refusal of the ScaledObject's dry run once the HPA is gone (KEDA's webhook answering from a cache
    that still holds it) fails the apply saying the HPA was removed; the retry applies the ScaledObject."""
    policy = _applied_alone(demo, cluster)
    cluster.fail["ScaledObject"] = 403
    policy.keda_enabled = True
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and cluster.deleted == [HPA_PATH]
    assert policy.apply_error.startswith("ScaledObject clinical-api: HTTP 403")
    assert policy.apply_error.endswith(
        "(removed before it: HorizontalPodAutoscaler/clinical-api; the Deployment keeps its replicas, unscaled, "
        "until the retry applies the successor)"
    )
    del cluster.fail["ScaledObject"]
    services.policies_reconcile(now=timezone.now() + timedelta(seconds=31))
    policy.refresh_from_db()
    assert policy.apply_state == "active" and policy.apply_attempts == 2, policy.apply_error
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["keda-hpa-clinical-api"]


@pytest.mark.parametrize("webhook", [True, False], ids=["kedas-webhook", "no-webhook"])
def test_the_first_switch_after_the_upgrade_removes_the_hpa_applied_before_it(demo, cluster, webhook):
    """Migration 0007 starts applied_objects empty for policies applied before it: their first switch to
    KEDA deleted nothing, so KEDA's webhook refused the ScaledObject (the policy failed until its attempts
    ran out) or, without the webhook, two HPAs scaled one Deployment. Applied before and with no objects
    kept, the other mode's autoscaler of the service's name is removed (already gone is fine). The fake
    API server stands in for the cluster and KEDA: no cluster exists here."""
    cluster.keda_webhook = webhook
    policy = _applied_alone(demo, cluster)
    ScalingPolicy.objects.filter(pk=policy.pk).update(applied_objects=[])  # as migration 0007 left it

    policy.refresh_from_db()
    policy.keda_enabled = True
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.deleted == [HPA_PATH]
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["keda-hpa-clinical-api"]
    assert "ScaledObject" in {ref["kind"] for ref in policy.applied_objects}


def test_an_api_version_changed_between_releases_does_not_delete_the_object_just_applied(demo, cluster, monkeypatch):
    """applied_objects kept each object's apiVersion, and an object was dropped when any of its ref
    changed: the HPA kept as autoscaling/v2beta2 by an earlier release was deleted (the API server serves
    one object under each of its versions) right after the autoscaling/v2 one was applied. Objects are
    told apart by kind, namespace and name. The fake API server serves both versions; no cluster exists
    here."""
    monkeypatch.setitem(
        kube.RESOURCES,
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
        "/apis/autoscaling/v2beta2/namespaces/{namespace}/horizontalpodautoscalers",
    )
    policy = _applied_alone(demo, cluster)
    older = [
        {**ref, "apiVersion": "autoscaling/v2beta2"} if ref["kind"] == "HorizontalPodAutoscaler" else ref
        for ref in policy.applied_objects
    ]
    ScalingPolicy.objects.filter(pk=policy.pk).update(applied_objects=older)

    policy.refresh_from_db()
    policy.max_replicas = 30
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.deleted == [] and "removed" not in policy.apply_error
    assert cluster.autoscalers_of("medical-ai", "clinical-api") == ["clinical-api"]
    assert {ref["apiVersion"] for ref in policy.applied_objects if ref["kind"] == "HorizontalPodAutoscaler"} == {
        "autoscaling/v2"
    }


def test_an_unreachable_cluster_fails_and_a_stuck_apply_is_sent_again(demo, cluster):
    ScalingPolicy.objects.exclude(service__slug="clinical-api").update(enabled=False)
    cluster.stop()
    policy = demo.get(service__slug="clinical-api")
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and "clinical-api" in policy.apply_error

    ScalingPolicy.objects.filter(pk=policy.pk).update(apply_state="applying", state_changed_at=timezone.now())
    assert services.policies_reconcile() == []
    assert services.policies_reconcile(now=timezone.now() + timedelta(minutes=11)) == [policy.pk]


def test_an_alert_turns_emergency_mode_on_and_off(demo):
    rule = AlertRule.objects.create(name="ED surge", metric="p95_ms", operator=">", threshold=500, severity="critical")
    policy = demo.get(service__slug="clinical-api")
    policy.emergency_alert_rule, policy.emergency_min_replicas = rule, 9
    policy.save()
    alert = Alert.objects.create(rule=rule, state="firing", value=900, last_value=900, message="p95 900 ms")
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.emergency_mode
    assert services.policy_manifests(policy)["clinical-api-hpa.yaml"]["spec"]["minReplicas"] == 9
    alert.state = "resolved"
    alert.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert not policy.emergency_mode


def test_history_from_prometheus(demo, settings):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    values = [((now - timedelta(hours=h)).timestamp(), 10.0 + h % 24) for h in range(100, 0, -1)]
    prometheus = FakePrometheus(values)
    settings.SCALING_PROMETHEUS_URL = prometheus.url
    try:
        policy = demo.get(service__slug="embeddings")
        policy.history_source, policy.prometheus_selector = "prometheus", 'app="embeddings"'
        series = hourly_history(policy, "request_rate", now=now)
    finally:
        prometheus.stop()
    assert len(series) == 100 and series.iloc[-1] == 11.0
    assert 'app="embeddings"' in prometheus.queries[0]["query"] and prometheus.queries[0]["step"] == "3600"


def test_the_brief_prediction_api(demo):
    service = WorkloadPredictionService("embeddings")
    hours = service.predictor.predict_workload_range(datetime.now(), hours_ahead=24)
    assert len(hours) == 24
    assert set(hours[0]) >= {"timestamp", "request_rate", "cpu", "memory", "response_time", "request_rate_model"}
    assert hours[0]["request_rate"]["p10"] <= hours[0]["request_rate"]["p90"]
    trends = service.predictor.analyze_workload_trends()
    assert trends["metrics"]["request_rate"]["periods"]["daily"]["found"]
    with pytest.raises(LookupError):
        WorkloadPredictionService("no-such-service")


def test_the_optimizer_scaling_step_proposes_a_higher_maximum_and_applies_it(demo):
    ScalingPolicy.objects.exclude(service__slug="embeddings").update(enabled=False)
    ScalingPolicy.objects.filter(service__slug="embeddings").update(max_replicas=3, emergency_min_replicas=3)
    from tests.optimizer.support import optimize

    run, output, code = optimize("scaling", "--inline", "--apply")
    assert code == 0, output
    step = run.steps.get()
    assert step.status == "succeeded"
    summary = step.findings["services"][0]
    assert summary["service"] == "embeddings" and summary["forecast"]["model"]
    applied = run.recommendations.get(kind="scaling_max_replicas")
    assert applied.status == "applied"
    assert ScalingPolicy.objects.get(service__slug="embeddings").max_replicas == applied.change["max_replicas"] > 3
    assert "<svg" in run.report_html and "embeddings" in run.report_html
    assert ScalingRecommendation.objects.filter(service__slug="embeddings").exists()


def _policy(slug: str, **fields) -> ScalingPolicy:
    service = Service.objects.create(name=slug, slug=slug, route_prefix=f"api/{slug}/")
    return services.scaling_policy_ensure(service, **{"history_source": "synthetic", **fields})[0]


def test_a_failing_policy_or_metric_keeps_no_other_from_its_forecast(settings, monkeypatch):
    settings.SCALING_HISTORY_DAYS = 4
    broken, deleted, fine = _policy("a-broken"), _policy("b-deleted"), _policy("c-fine")
    real = services.hourly_history

    def history(policy, metric, *, now):
        if policy.service.slug == "a-broken" and metric == "cpu":
            raise RuntimeError("the exporter answered garbage")
        if policy.service.slug == "b-deleted":
            Service.objects.filter(slug="b-deleted").delete()  # an admin deletes it meanwhile
        return real(policy, metric, now=now)

    monkeypatch.setattr(services, "hourly_history", history)
    report = services.forecasts_refresh(services=[broken.service, deleted.service, fine.service])
    assert report["skipped"] == ["a-broken cpu: RuntimeError: the exporter answered garbage",
                                 "b-deleted: deleted during its forecast."]  # fmt: skip
    assert broken.service.forecasts.count() == 3 and broken.service.scaling_recommendations.count() == 1
    assert fine.service.forecasts.count() == 4 and fine.service.scaling_recommendations.count() == 1


def test_a_flat_history_is_forecast_and_stored(monkeypatch):
    policy = _policy("flat")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    flat = pd.Series(120.0, index=pd.date_range(end=now - timedelta(hours=1), periods=96, freq="h"))
    monkeypatch.setattr(services, "hourly_history", lambda policy, metric, *, now: flat)
    made = services.forecast_create(policy, "cpu", now=now)
    made.refresh_from_db()
    assert made.patterns["periods"]["daily"] == {"acf": None, "found": False}
    assert all(point["p50"] == pytest.approx(120.0) for point in made.points)
    json.dumps([made.scores, made.patterns, made.points], allow_nan=False)


def test_a_lone_burst_weeks_before_is_not_history_to_plan_from(monkeypatch, settings):
    """One hour of a load test (or of a retired service whose slug was reused) three weeks before the hours
    really seen was spread over the gap as its mean: Holt-Winters won the backtest on that invented history
    with a P90 of 1,143 req/s for ~10 req/s, and the plan asked for 33 replicas."""
    settings.SCALING_BACKTEST_FOLDS = 3  # the default: the backtest that chose the wild model
    policy = _policy("burst")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    seen = pd.date_range(end=now - timedelta(hours=1), periods=80, freq="h", tz="UTC")
    daily = pd.Series([10.0 + 4 * math.sin(2 * math.pi * at.hour / 24) for at in seen], index=seen)
    burst = pd.Series([50_000.0], index=[seen[0] - timedelta(days=21)])
    history = pd.concat([burst, daily])
    monkeypatch.setattr(services, "hourly_history", lambda policy, metric, *, now: history)
    made = services.forecast_create(policy, "request_rate", now=now)
    assert made.history_hours == 80
    assert max(point["p90"] for point in made.points) < 30
    plan = services.recommendation_create(policy, made)
    assert plan.peak_replicas == policy.min_replicas

    monkeypatch.setattr(services, "hourly_history", lambda policy, metric, *, now: pd.concat([burst, daily[-60:]]))
    with pytest.raises(HistoryUnavailable, match="not enough history, 60 hours since a gap of over 7 days, 72"):
        services.forecast_create(policy, "request_rate", now=now)


@pytest.mark.parametrize("hours", [0, 1])
def test_a_service_without_history_yet_is_not_enough_history(monkeypatch, hours):
    """A service's first hour (no requests yet: an empty series without a time index) is a skip that says
    so, not a TypeError from looking for gaps."""
    policy = _policy("new")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    history = pd.Series([5.0] * hours, index=pd.date_range(end=now, periods=hours, freq="h")) if hours else None
    monkeypatch.setattr(
        services, "hourly_history", lambda *a, **k: pd.Series(dtype=float) if history is None else history
    )
    with pytest.raises(HistoryUnavailable, match=f"new request_rate: not enough history, {hours} hours, 72 needed."):
        services.forecast_create(policy, "request_rate", now=now)


def test_prometheus_infinities_are_not_history(settings):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    # histogram_quantile answers +Inf when the quantile falls in the +Inf bucket; NaN when there were no samples.
    values = [((now - timedelta(hours=h)).timestamp(), "+Inf" if h % 10 == 0 else "NaN" if h == 55 else 100 + h % 24)
              for h in range(100, 0, -1)]  # fmt: skip
    prometheus = FakePrometheus(values)
    settings.SCALING_PROMETHEUS_URL = prometheus.url
    try:
        policy = _policy("latency", history_source="prometheus")
        series = hourly_history(policy, "response_time", now=now)
        made = services.forecast_create(policy, "response_time", now=now)
    finally:
        prometheus.stop()
    assert len(series) == 100 - 10 - 1 and series.map(math.isfinite).all()
    made.refresh_from_db()
    assert made.history_hours == 99 and all(math.isfinite(point["p90"]) for point in made.points)


def test_hours_without_requests_are_zero_requests(settings):
    policy = _policy("daytime", history_source="metrics")
    now = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)
    histogram = new_histogram()
    histogram.record_value(20_000)
    blob = histogram.encode()

    def minute(at: datetime) -> RequestRollup:
        return RequestRollup(minute=at, route="api/daytime/x/", method="GET", status_class="2xx", client="c",
                             count=600, histogram=blob, p95_ms=20)  # fmt: skip

    # Traffic 08:00-18:00 only, for 8 days (3,600 requests an hour: 1 req/s), and the hour in progress.
    first = now.replace(minute=0) - timedelta(days=8)
    RequestRollup.objects.bulk_create(
        [minute(first + timedelta(days=day, hours=hour, minutes=m))
         for day in range(8) for hour in range(8, 18) for m in range(0, 60, 10)]
        + [minute(now.replace(minute=1))]
    )  # fmt: skip
    series = hourly_history(policy, "request_rate", now=now)
    # Every hour from the first with traffic to the last whole one; the hour in progress left out.
    assert series.index[0] == first + timedelta(hours=8) and series.index[-1] == now.replace(minute=0) - timedelta(
        hours=1
    )
    assert len(series) == 8 * 24 - 8
    assert set(series[series.index.hour < 8]) == {0.0} and set(series[series.index.hour >= 18]) == {0.0}
    assert set(series[(series.index.hour >= 8) & (series.index.hour < 18)]) == {1.0}
    made = services.forecast_create(policy, "request_rate", now=now)
    assert made.history_hours == 8 * 24 - 8
    night = [point["p50"] for point in made.points if pd.Timestamp(point["at"]).hour < 6]
    assert max(night) < 0.1


def test_an_unusable_kubeconfig_fails_the_apply_with_its_reason(settings, tmp_path, monkeypatch):
    settings.SCALING_KUBECONFIG = str(tmp_path / "missing-kubeconfig")
    policy = _policy("kube", predictive=False)
    policy.refresh_from_db()
    assert policy.apply_state == "pending"
    done = services.policy_apply(policy_id=policy.pk)
    assert done.apply_state == "failed" and "missing-kubeconfig" in done.apply_error and done.apply_attempts == 1

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings.SCALING_KUBECONFIG = "in-cluster"  # outside a cluster
    done = services.policy_apply(policy_id=policy.pk)
    assert done.apply_state == "failed" and "'in-cluster' is not usable" in done.apply_error

    out = StringIO()
    with pytest.raises(CommandError, match="Some manifests were not applied"):
        call_command("scaling", "apply", "--service", "kube", stdout=out)
    assert "failed" in out.getvalue() and "'in-cluster' is not usable" in out.getvalue()


def test_an_apply_stuck_as_often_as_the_attempts_cap_is_not_sent_again(cluster, settings):
    policy = _policy("stuck", predictive=False)
    long_ago = timezone.now() - timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS + 60)
    ScalingPolicy.objects.filter(pk=policy.pk).update(
        apply_state="applying", state_changed_at=long_ago, apply_attempts=settings.SCALING_APPLY_MAX_ATTEMPTS - 1
    )
    assert services.policies_reconcile() == [policy.pk]  # below the cap: sent again
    policy.refresh_from_db()
    assert policy.apply_state == "active"

    ScalingPolicy.objects.filter(pk=policy.pk).update(
        apply_state="applying", state_changed_at=long_ago, apply_attempts=settings.SCALING_APPLY_MAX_ATTEMPTS
    )
    seen = len(cluster.requests)
    assert services.policies_reconcile() == []
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and "not sent again" in policy.apply_error
    assert len(cluster.requests) == seen
    assert services.policies_reconcile(now=timezone.now() + timedelta(hours=1)) == []  # no retry past the cap


def test_a_second_delivery_does_not_apply_while_the_first_is_applying(cluster, settings):
    policy = _policy("twice", predictive=False)
    ScalingPolicy.objects.filter(pk=policy.pk).update(
        apply_state="applying", state_changed_at=timezone.now(), apply_attempts=1
    )
    done = services.policy_apply(policy_id=policy.pk)
    assert done.apply_state == "applying" and done.apply_attempts == 1 and cluster.requests == []
    # A worker lost with it: once stuck for longer than a worker can take, it is applied again.
    ScalingPolicy.objects.filter(pk=policy.pk).update(
        state_changed_at=timezone.now() - timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS + 1)
    )
    done = services.policy_apply(policy_id=policy.pk)
    assert done.apply_state == "active" and done.apply_attempts == 2 and cluster.requests


def test_an_apply_by_hand_does_not_overlap_one_in_flight(cluster, settings):
    """`manage.py scaling apply` (and admin's Apply now) set PENDING over a worker's APPLYING, so a second
    apply ran beside the one in flight, which the state machine exists to prevent."""
    policy = _policy("busy", predictive=False)
    ScalingPolicy.objects.filter(pk=policy.pk).update(apply_state="applying", state_changed_at=timezone.now())
    out = StringIO()
    call_command("scaling", "apply", "--service", "busy", stdout=out)
    assert "an apply is in flight" in out.getvalue() and cluster.requests == []
    assert ScalingPolicy.objects.get(pk=policy.pk).apply_state == "applying"
    stuck = timezone.now() - timedelta(seconds=settings.SCALING_APPLY_STUCK_SECONDS + 1)
    ScalingPolicy.objects.filter(pk=policy.pk).update(state_changed_at=stuck)  # its worker is gone
    call_command("scaling", "apply", "--service", "busy", stdout=StringIO())
    assert ScalingPolicy.objects.get(pk=policy.pk).apply_state == "active" and cluster.requests


def test_emergency_mode_by_hand_and_by_alert_each_keep_it_on():
    rule = AlertRule.objects.create(name="ED surge", metric="p95_ms", operator="gt", threshold=500)
    policy = _policy("ed", predictive=False, emergency_alert_rule=rule)
    services.emergency_mode_set(policy, on=True)
    services.policies_reconcile()  # the rule is quiet
    policy.refresh_from_db()
    assert policy.emergency_mode and policy.floor_replicas == 10

    alert = Alert.objects.create(rule=rule, state="firing", value=900, last_value=900, message="p95 900 ms")
    services.emergency_mode_set(policy, on=False)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.emergency_mode and not policy.emergency_manual  # the alert holds it

    alert.state = "resolved"
    alert.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert not policy.emergency_mode


def test_emergency_mode_set_by_hand_until_a_time_ends_then_and_lifts_the_minimum_until_it():
    """Emergency mode set by hand stayed on until someone remembered it: a night's mass-casualty response
    kept ten replicas for weeks. Set with an end, the checker ends it then (an alert still holds it)."""
    policy = _policy("ed", predictive=False)
    now = timezone.now()
    policy.emergency_until = now + timedelta(hours=12)
    services.emergency_mode_set(policy, on=True)
    services.policies_reconcile(now=now + timedelta(hours=11))
    policy.refresh_from_db()
    assert policy.emergency_mode and policy.emergency_manual and policy.floor_replicas == 10
    services.policies_reconcile(now=now + timedelta(hours=12, minutes=1))
    policy.refresh_from_db()
    assert (policy.emergency_mode, policy.emergency_manual, policy.emergency_until) == (False, False, None)
    assert services.policy_manifests(policy)["ed-hpa.yaml"]["spec"]["minReplicas"] == 2

    policy.emergency_until = now + timedelta(hours=1)  # switched off by hand before its end: the end goes too
    services.emergency_mode_set(policy, on=True)
    services.emergency_mode_set(policy, on=False)
    policy.refresh_from_db()
    assert (policy.emergency_mode, policy.emergency_until) == (False, None)


def test_an_alert_left_firing_by_a_disabled_rule_does_not_hold_emergency_mode():
    rule = AlertRule.objects.create(name="CPU", metric="cpu_pct", operator="gt", threshold=80)
    policy = _policy("cpu-bound", predictive=False, emergency_alert_rule=rule)
    Alert.objects.create(rule=rule, state="firing", value=97, last_value=97, message="CPU 97%")
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.emergency_mode
    rule.enabled = False  # an operator silences the rule
    rule.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert not policy.emergency_mode


def test_a_hospital_off_utc_is_forecast_and_scaled_on_its_own_clock(settings):
    """New York's clinics open at 08:00 New York time, 13:00 UTC in winter and 12:00 in summer: the history,
    the named peaks and KEDA's cron windows are all read on the hospital's clock (settings.TIME_ZONE), so
    a window does not drift an hour twice a year nor land on the wrong day's holiday."""
    settings.TIME_ZONE = "America/New_York"
    policy = _policy("clinic", history_source="metrics", keda_enabled=True, replica_capacity_rps=1)
    now = datetime(2026, 11, 20, 5, 5, tzinfo=UTC)  # 00:05 in New York
    histogram = new_histogram()
    histogram.record_value(20_000)
    blob = histogram.encode()
    first = datetime(2026, 11, 12, 13, tzinfo=UTC)  # 08:00 in New York (EST, UTC-5)
    RequestRollup.objects.bulk_create(
        [RequestRollup(minute=first + timedelta(days=day, hours=hour, minutes=m), route="api/clinic/x/", method="GET",
                       status_class="2xx", client="c", count=6000, histogram=blob, p95_ms=20)
         for day in range(8) for hour in range(10) for m in range(0, 60, 10)]
    )  # fmt: skip
    series = hourly_history(policy, "request_rate", now=now)
    assert str(series.index.tz) == "America/New_York"
    assert set(series[(series.index.hour >= 8) & (series.index.hour < 18)]) == {10.0}
    made = services.forecast_create(policy, "request_rate", now=now)
    busy = [pd.Timestamp(point["at"]).hour for point in made.points if point["p50"] > 5]
    assert min(busy) == 8 and max(busy) == 17
    plan = services.recommendation_create(policy, made)
    assert any(" (America/New_York) for a P90 " in reason for reason in plan.reasons)
    policy.refresh_from_db()
    cron = [
        trigger["metadata"]
        for trigger in services.policy_manifests(policy)["clinic-scaledobject.yaml"]["spec"]["triggers"]
        if trigger["type"] == "cron"
    ]
    assert cron and all(window["timezone"] == "America/New_York" for window in cron)
    # The clinic's day, ready an hour ahead (lead time), on New York's clock: KEDA keeps it there in summer.
    assert cron[0]["start"] in ("0 7 * * *", "0 8 * * *") and cron[-1]["end"] == "0 18 * * *"


def _constant_traffic(route: str, first: datetime, hours: int) -> None:
    histogram = new_histogram()
    histogram.record_value(20_000)
    blob = histogram.encode()
    RequestRollup.objects.bulk_create(
        [RequestRollup(minute=first + timedelta(hours=hour, minutes=m), route=route, method="GET", status_class="2xx",
                       client="c", count=600, histogram=blob, p95_ms=20)
         for hour in range(hours) for m in range(0, 60, 10)]
    )  # fmt: skip


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_hours_are_cut_in_utc_on_the_night_clocks_go_back_and_in_half_hour_zones(settings, zone):
    """1 req/s for three days across New York's fall-back night (01:00 comes twice): cut on the local clock,
    the two 01:00s would fold into one hour of 2 req/s beside an empty one, and Kolkata's hours (hh:30 in
    UTC terms) would straddle the UTC bounds and read half the traffic at both ends."""
    settings.TIME_ZONE = zone
    policy = _policy("steady", history_source="metrics")
    first = datetime(2026, 10, 31, 12, tzinfo=UTC)
    _constant_traffic("api/steady/x/", first, 72)
    series = hourly_history(policy, "request_rate", now=first + timedelta(hours=72, minutes=5))
    assert len(series) == 72 and set(series) == {1.0}
    assert str(series.index.tz) == zone and (series.index[1:] - series.index[:-1] == pd.Timedelta(hours=1)).all()


def test_keda_windows_keep_half_hours_and_the_fall_back_night_in_one_window(settings):
    from types import SimpleNamespace

    settings.TIME_ZONE = "Asia/Kolkata"
    start = pd.Timestamp("2026-11-20T00:00:00+00:00")  # 05:30 in Kolkata
    hours = [{"at": (start + pd.Timedelta(hours=i)).isoformat(), "replicas": 6 if i < 12 else 1} for i in range(24)]
    windows = services.peak_windows(SimpleNamespace(hours=hours), floor=2)
    assert windows == [{"start_hour": 5, "start_minute": 30, "end_hour": 17, "end_minute": 30, "replicas": 6}]

    settings.TIME_ZONE = "America/New_York"
    start = pd.Timestamp("2026-11-01T04:00:00+00:00")  # 00:00 EDT; 01:00 comes twice that night
    hours = [{"at": (start + pd.Timedelta(hours=i)).isoformat(), "replicas": 6 if i < 4 else 1} for i in range(24)]
    windows = services.peak_windows(SimpleNamespace(hours=hours), floor=2)
    assert windows == [{"start_hour": 0, "start_minute": 0, "end_hour": 3, "end_minute": 0, "replicas": 6}]


def test_a_maximum_lowered_after_the_plan_keeps_the_keda_manifests_valid(tmp_path):
    """The plan's cron windows kept the replicas planned under the old maximum (40), above the new one (30):
    the ScaledObject was refused offline, so export and apply stopped for every policy until a new plan."""
    policy = _policy("triage", keda_enabled=True, max_replicas=50)
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    hours = [{"at": (start + timedelta(hours=i)).isoformat(), "replicas": 40 if 6 <= i < 9 else 2} for i in range(24)]
    ScalingRecommendation.objects.create(service=policy.service, hours=hours, peak_replicas=40, min_replicas=2)
    policy.max_replicas = 30
    policy.full_clean()
    policy.save()
    docs = services.policy_manifests(policy)
    assert manifests.validate(docs) == []
    crons = [t for t in docs["triage-scaledobject.yaml"]["spec"]["triggers"] if t["type"] == "cron"]
    assert [cron["metadata"]["desiredReplicas"] for cron in crons] == ["30"]
    assert len(services.manifests_export(out=tmp_path)) == 5


def test_a_policy_is_forecast_by_one_run_at_a_time(settings, monkeypatch):
    """The hourly task redelivered, or `manage.py scaling forecast` while beat's run is at it: each made a full
    set of forecasts and a replica plan for the same hour, and applied it again."""
    import threading

    settings.SCALING_HISTORY_DAYS = 4
    policy = _policy("one-run")
    real = services.hourly_history
    second: dict = {}

    def history(policy, metric, *, now):
        if not second:  # the other run starts while this one is forecasting
            second["report"] = None
            thread = threading.Thread(target=lambda: second.update(report=services.forecasts_refresh()))
            thread.start()
            thread.join()
        return real(policy, metric, now=now)

    monkeypatch.setattr(services, "hourly_history", history)
    first = services.forecasts_refresh(services=[policy.service])
    assert second["report"]["skipped"] == ["one-run: its forecasts are being made by another run."]
    assert second["report"]["forecasts"] == [] and len(first["forecasts"]) == 4
    assert policy.service.forecasts.count() == 4 and policy.service.scaling_recommendations.count() == 1

    monkeypatch.setattr(services, "hourly_history", real)  # the hold ends with the run
    assert len(services.forecasts_refresh(services=[policy.service])["forecasts"]) == 4


def test_a_run_past_its_hold_does_not_release_the_next_run_s_hold(settings, monkeypatch):
    """A run outlasting FORECAST_TURN_SECONDS loses its hold and another run takes it; when the first ended it
    deleted the key, the second run's hold, and a third could start beside the second (R4's review)."""
    from django.core.cache import cache

    settings.SCALING_HISTORY_DAYS = 4
    policy = _policy("hold-owner")
    key = services._forecast_turn_key(policy)

    def slow_run(policy, *, now, report, **kwargs):
        cache.delete(key)  # the hold lapsed while this run was still forecasting
        assert cache.add(key, "second run", timeout=services.FORECAST_TURN_SECONDS)  # another run's turn

    monkeypatch.setattr(services, "_policy_forecasts_refresh", slow_run)
    services.forecasts_refresh(services=[policy.service])
    assert cache.get(key) == "second run"
