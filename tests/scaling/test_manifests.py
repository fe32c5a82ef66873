"""Manifests from the Kubernetes client's models: schemas, the API server's ranges, the HPA/VPA rule."""

import json

import kubernetes_validate
import pytest
import yaml

from apps.scaling import manifests
from apps.scaling.manifests import MedicalAIServiceAutoscalingConfig, ServiceScaling

KINDS = {"Deployment", "Service", "PodDisruptionBudget", "VerticalPodAutoscaler", "HorizontalPodAutoscaler"}


def _generate(**config) -> dict[str, dict]:
    files = MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage", **config})
    return {doc["kind"]: doc for doc in (yaml.safe_load(text) for text in files.values())}


def test_the_brief_defaults_give_five_valid_manifests():
    files = MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage"})
    assert set(files) == {f"triage-{kind}.yaml" for kind in ("deployment", "service", "pdb", "vpa", "hpa")}
    docs = {doc["kind"]: doc for doc in (yaml.safe_load(text) for text in files.values())}
    assert set(docs) == KINDS
    for kind in KINDS - {"VerticalPodAutoscaler"}:
        kubernetes_validate.validate(docs[kind], manifests.KUBERNETES_VERSION, strict=True)
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 50)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["policies"] == [{"periodSeconds": 60, "type": "Percent", "value": 100}]
    assert down["policies"] == [{"periodSeconds": 300, "type": "Percent", "value": 10}]
    assert down["stabilizationWindowSeconds"] == 300
    assert "replicas" not in docs["Deployment"]["spec"]  # the autoscaler owns the count


def test_the_deployment_survives_a_slow_model_load_and_a_slow_peak_and_drains_on_scale_down():
    """The generated Deployment had liveness on /healthz with the kubelet's defaults (1 s timeout, 3 failures
    10 s apart, no startup probe): a model service still loading its weights after 30 s was restarted, for
    ever, and one whose /healthz waited over a second behind inference at its peak was restarted as the load
    came. Nor did a pod taken away by a scale-down wait for the endpoints to drop it. Read from the manifest:
    no cluster here."""
    container = _generate()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    startup, liveness, readiness = (container[probe] for probe in ("startupProbe", "livenessProbe", "readinessProbe"))

    def tolerated(probe: dict) -> int:  # seconds of failed checks before the kubelet acts
        return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)

    assert startup["httpGet"]["path"] == liveness["httpGet"]["path"] == "/healthz"
    assert readiness["httpGet"]["path"] == "/readyz"
    assert tolerated(startup) >= 300  # five minutes to load a model before liveness applies
    assert liveness.get("timeoutSeconds", 1) >= 5 and tolerated(liveness) >= 60
    assert tolerated(readiness) < tolerated(liveness)  # out of rotation before it is restarted
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] >= 5


def test_the_service_pods_hold_no_api_token_and_cannot_escalate():
    """Every generated pod had the namespace's default service account token mounted (a compromised model
    server could call the API server with it) and could gain privileges through a setuid binary. Both are
    off; the pods run the syscall filter the runtime ships."""
    pod = _generate()["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_rollout_never_takes_serving_replicas_away_before_their_successors_are_ready():
    """The Deployment had the default rollout (25% unavailable): a new image took a quarter of the replicas
    away at once, at a peak planned at 70% of capacity more than the rest could serve."""
    strategy = _generate()["Deployment"]["spec"].get("strategy", {})
    assert strategy.get("type", "RollingUpdate") == "RollingUpdate"
    rolling = strategy.get("rollingUpdate", {})
    assert rolling.get("maxUnavailable", "25%") in (0, "0%")
    assert rolling.get("maxSurge", "25%") not in (0, "0%")  # else the rollout could never start


def test_vpa_never_acts_on_what_the_hpa_scales_on():
    both = _generate(vpa_mode="Auto")
    vpa = both["VerticalPodAutoscaler"]
    assert vpa["spec"]["updatePolicy"]["updateMode"] == "Off"
    assert (
        "HPA scales on cpu and memory" in vpa["metadata"]["annotations"]["scaling.controlplane.io/hpa-vpa-resolution"]
    )

    cpu_only = _generate(vpa_mode="Auto", target_memory_pct=None)
    vpa = cpu_only["VerticalPodAutoscaler"]["spec"]
    assert vpa["updatePolicy"]["updateMode"] == "Auto"
    assert vpa["resourcePolicy"]["containerPolicies"][0]["controlledResources"] == ["memory"]
    assert [m["resource"]["name"] for m in cpu_only["HorizontalPodAutoscaler"]["spec"]["metrics"]] == ["cpu"]


def test_a_hand_made_conflict_is_caught():
    spec = ServiceScaling(name="triage")
    docs = manifests.documents(spec)
    docs["triage-vpa.yaml"]["spec"]["updatePolicy"]["updateMode"] = "Auto"
    assert manifests.validate(docs) == ["HPA and VPA both act on cpu, memory"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"scale_up_period_seconds": 0}, "periodSeconds 0: must be 1-1800"),
        ({"scale_down_period_seconds": 1801}, "periodSeconds 1801: must be 1-1800"),
        ({"scale_down_stabilization_seconds": 3601}, "stabilizationWindowSeconds 3601: must be 0-3600"),
        ({"min_replicas": 8, "max_replicas": 4}, "maxReplicas 4: must be at least minReplicas 8"),
        ({"target_cpu_pct": 150}, "averageUtilization 150: must be 1-100"),
        ({"min_replicas": 0}, "minReplicas 0: must be at least 1"),
        # Names the schemas take and the API server refuses: upper case, '_', a digit first, over 63.
        ({"name": "Triage_Model"}, "metadata.name 'Triage_Model': must be a lower-case RFC 1035 label"),
        ({"name": "3d-imaging"}, "metadata.name '3d-imaging': must be"),
        ({"name": "t" * 64}, "label app.kubernetes.io/name 't{64}': must be 63 characters at most"),
        # The brief's service_config takes any value: what KEDA's CRD (no schema offline) and the API server
        # refuse is refused here too, not accepted (or a ValueError from int("2.5")).
        ({"keda_enabled": True, "min_replicas": -1}, "minReplicaCount -1, maxReplicaCount 50: must be whole"),
        ({"keda_enabled": True, "max_replicas": 7.5}, "maxReplicaCount 7.5: must be whole"),
        ({"keda_enabled": True, "target_cpu_pct": 150}, "cpu trigger value '150': must be 1-100"),
        ({"keda_enabled": True, "target_rps_per_pod": -5}, "prometheus threshold '-5': must be above 0"),
        (
            {"keda_enabled": True, "peak_windows": [{"start_hour": 6, "end_hour": 9, "replicas": 2.5}]},
            "cron desiredReplicas 2.5: must be a whole number",
        ),
        (
            {"keda_enabled": True, "peak_windows": [{"start_hour": 25, "end_hour": 9, "replicas": 4}]},
            r"cron start '0 25 \* \* \*': must be",
        ),
        ({"target_rps_per_pod": -5}, "pods averageValue -5: must be a quantity above 0"),
        ({"pdb_max_unavailable": -1}, "maxUnavailable -1: must be a whole number"),
        ({"container_port": 70000}, "containerPort 70000: must be 1-65535"),
    ],
)
def test_ranges_the_api_server_would_refuse_are_refused_offline(config, message):
    with pytest.raises(ValueError, match=message):
        MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage", **config})


@pytest.mark.parametrize("slug", ["ok-name", "CT_Scanner", "3d-imaging", "x" * 80, "Radiology_AI_" + "b" * 60])
def test_a_service_slug_always_gives_a_name_the_api_server_takes(slug):
    name = manifests.kubernetes_name(slug)
    assert manifests.NAME.fullmatch(name) and len(name) <= 63
    assert name == slug if slug == "ok-name" else name != slug
    docs = manifests.documents(ServiceScaling(name=name))
    assert manifests.validate(docs) == []


def test_slugs_that_read_alike_never_share_their_objects():
    names = {manifests.kubernetes_name(slug) for slug in ("ct-scanner", "CT_Scanner", "ct_scanner", "CT-Scanner")}
    assert len(names) == 4 and "ct-scanner" in names


def test_unknown_service_config_keys_are_named():
    with pytest.raises(ValueError, match="Unknown service_config keys: replicas"):
        MedicalAIServiceAutoscalingConfig().generate_complete_config({"name": "triage", "replicas": 3})


def test_keda_replaces_the_hpa_and_warms_up_for_forecast_peaks():
    docs = _generate(
        keda_enabled=True, target_rps_per_pod=25, peak_windows=[{"start_hour": 6, "end_hour": 9, "replicas": 8}]
    )
    assert "HorizontalPodAutoscaler" not in docs  # KEDA creates its own: never two HPAs on one Deployment
    scaled = docs["ScaledObject"]["spec"]
    assert [t["type"] for t in scaled["triggers"]] == ["cpu", "memory", "prometheus", "cron"]
    cron = scaled["triggers"][-1]["metadata"]
    assert (cron["start"], cron["end"], cron["desiredReplicas"]) == ("0 6 * * *", "0 9 * * *", "8")
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["policies"][0]["value"] == 100


def test_emergency_mode_lifts_the_minimum():
    assert (
        _generate(emergency_mode=True, emergency_min_replicas=12)["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
        == 12
    )


def test_a_plan_above_the_floor_all_day_is_two_cron_windows_that_keda_accepts():
    from types import SimpleNamespace

    import pandas as pd

    from apps.scaling.services import peak_windows

    start = pd.Timestamp("2026-11-20T15:00:00+00:00")
    hours = [{"at": (start + pd.Timedelta(hours=i)).isoformat(), "replicas": 6 + i % 3} for i in range(24)]
    windows = peak_windows(SimpleNamespace(hours=hours), floor=2)
    # One window of 24 hours would start and end at 15:00, which KEDA refuses.
    assert windows == [
        {"start_hour": 15, "start_minute": 0, "end_hour": 3, "end_minute": 0, "replicas": 8},
        {"start_hour": 3, "start_minute": 0, "end_hour": 15, "end_minute": 0, "replicas": 8},
    ]
    assert (
        manifests.validate(manifests.documents(ServiceScaling(name="busy", keda_enabled=True, peak_windows=windows)))
        == []
    )
    same = ServiceScaling(
        name="busy", keda_enabled=True, peak_windows=[{"start_hour": 15, "end_hour": 15, "replicas": 8}]
    )
    assert manifests.validate(manifests.documents(same)) == [
        "busy-scaledobject.yaml: cron start and end '0 15 * * *': must differ"
    ]


@pytest.mark.parametrize(
    ("url", "mode", "keys"),
    [
        ("https://keda-reader:s3cret-pw@prometheus.example:9090/prom", "basic", ["username", "password"]),
        ("https://:s3cret-token@prometheus.example:9090/prom", "bearer", ["bearerToken"]),
    ],
)
def test_prometheus_credentials_stay_out_of_the_manifests_behind_a_trigger_authentication(url, mode, keys):
    """Credentials in SCALING_PROMETHEUS_URL were written into the ScaledObject's serverAddress: in every export,
    the admin's preview, and for anyone who can read the namespace's objects. KEDA reads them from a Secret."""
    spec = ServiceScaling(name="triage", keda_enabled=True, target_rps_per_pod=20, prometheus_url=url)
    config = MedicalAIServiceAutoscalingConfig().generate_complete_config(spec)
    text = "".join(config.values())
    assert "s3cret" not in text and "keda-reader" not in text
    scaled = yaml.safe_load(config["triage-scaledobject.yaml"])
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    assert trigger["metadata"]["serverAddress"] == "https://prometheus.example:9090/prom"
    assert trigger["metadata"]["authModes"] == mode
    assert trigger["authenticationRef"] == {"name": "triage"}
    auth = yaml.safe_load(config["triage-triggerauthentication.yaml"])
    assert auth["kind"] == "TriggerAuthentication" and auth["metadata"]["namespace"] == "medical-ai"
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": key, "name": manifests.PROMETHEUS_AUTH_SECRET, "key": key} for key in keys
    ]


def test_a_prometheus_without_credentials_needs_no_trigger_authentication():
    spec = ServiceScaling(name="triage", keda_enabled=True, target_rps_per_pod=20, prometheus_url="http://prom:9090")
    docs = manifests.documents(spec)
    assert not any(doc["kind"] == "TriggerAuthentication" for doc in docs.values())
    (trigger,) = [t for t in docs["triage-scaledobject.yaml"]["spec"]["triggers"] if t["type"] == "prometheus"]
    assert "authenticationRef" not in trigger and trigger["metadata"]["serverAddress"] == "http://prom:9090"


def test_the_trigger_authentication_is_applied_with_the_scaled_object(settings, tmp_path):
    """Against the fake API server (tests/scaling/fake_servers.py): no cluster exists here."""
    from apps.scaling import kube
    from tests.scaling.fake_servers import FakeKubernetes

    fake = FakeKubernetes()
    try:
        settings.SCALING_KUBECONFIG = fake.kubeconfig(tmp_path / "kubeconfig")
        spec = ServiceScaling(
            name="triage", keda_enabled=True, target_rps_per_pod=20, prometheus_url="https://u:s3cret@prom:9090"
        )
        applied = kube.apply_documents(list(manifests.documents(spec).values()))
        assert "TriggerAuthentication/triage" in applied
        with fake.lock:
            assert "s3cret" not in json.dumps(list(fake.objects.values()))
    finally:
        fake.stop()
