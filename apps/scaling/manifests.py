"""Kubernetes manifests for one service: Deployment, Service, HPA autoscaling/v2 (or a KEDA ScaledObject),
VPA and PodDisruptionBudget, built from the `kubernetes` client's models and validated offline.

HPA and VPA must never both act on CPU or memory: the HPA scales out on a resource's utilization while
the VPA resizes the same requests, and each undoes the other. The generator resolves it: the VPA keeps
only the resources the HPA does not scale on, or recommends only (updateMode Off), and says which in an
annotation.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import yaml

from apps.scaling.lazy import LazyModule

client = LazyModule("kubernetes.client")  # imported when a manifest is first built

ANNOTATION = "scaling.controlplane.io"
RESOURCES = ("cpu", "memory")
KUBERNETES_VERSION = "1.33"
MANAGED_BY = "medical-ai-control-plane"
# API groups kubernetes-validate has schemas for; the CRDs (VPA, KEDA) get our range checks only.
BUILT_IN = ("apps/v1", "v1", "autoscaling/v2", "policy/v1")
# Every object, the container and the name label share one name, and a v1 Service's is the strictest rule:
# an RFC 1035 label (the schemas check none of these, the API server refuses them).
NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# The Secret, in each service's namespace, holding Prometheus' credentials for KEDA (made by whoever
# deploys: kubectl create secret generic prometheus-auth --from-literal=username=... --from-literal=password=...,
# or --from-literal=bearerToken=...). The manifests only name it: they are exported to files and shown in admin.
PROMETHEUS_AUTH_SECRET = "prometheus-auth"  # noqa: S105 (a Secret's name, not a credential)


def kubernetes_name(slug: str) -> str:
    """The objects' name for a service slug. A slug may hold upper case and '_', start with a digit or run
    to 80 characters, none of which the API server takes in a name; such a slug is made into a valid name
    with a digest of the slug appended, so two slugs (CT_Scan, ct-scan) never share the objects."""
    if NAME.fullmatch(slug):
        return slug
    name = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"svc-{name}".rstrip("-")
    suffix = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


@dataclass
class ServiceScaling:
    """Everything the manifests of one service depend on (a ScalingPolicy, or the brief's service_config)."""

    name: str
    namespace: str = "medical-ai"
    image: str = ""
    container_port: int = 8000
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    min_replicas: int = 2
    max_replicas: int = 50
    target_cpu_pct: int | None = 70
    target_memory_pct: int | None = 80
    target_rps_per_pod: float | None = None
    scale_up_percent: int = 100
    scale_up_period_seconds: int = 60
    scale_up_stabilization_seconds: int = 0
    scale_down_percent: int = 10
    scale_down_period_seconds: int = 300
    scale_down_stabilization_seconds: int = 300
    pdb_max_unavailable: int = 1
    vpa_mode: str = "Off"
    keda_enabled: bool = False
    emergency_mode: bool = False
    emergency_min_replicas: int = 10
    prometheus_url: str = "http://prometheus.monitoring:9090"
    # Forecast peaks as KEDA cron windows: [{"start_hour": 6, "end_hour": 9, "replicas": 8}] (minutes
    # optional: "start_minute", "end_minute"), on the hospital's clock in `time_zone` (an IANA name: KEDA
    # follows its daylight-saving changes).
    peak_windows: list[dict] = field(default_factory=list)
    time_zone: str = "Etc/UTC"
    # When the plan the windows come from was made, if it is stale (no forecast has replaced it for a day):
    # the ScaledObject says so, or the windows went on repeating a day long gone with nothing to tell.
    stale_plan_made_at: str = ""

    @classmethod
    def from_config(cls, config: dict) -> ServiceScaling:
        """The brief's service_config: a dict with `name` and any of the fields above."""
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"Unknown service_config keys: {', '.join(sorted(unknown))}")
        if not config.get("name"):
            raise ValueError("service_config needs a name.")
        return cls(**config)

    @classmethod
    def from_policy(
        cls,
        policy,
        *,
        peak_windows: list[dict] | None = None,
        prometheus_url: str = "",
        time_zone: str = "",
        stale_plan_made_at: str = "",
    ) -> ServiceScaling:
        values = {f.name: getattr(policy, f.name) for f in fields(cls) if hasattr(policy, f.name)}
        values["name"] = kubernetes_name(policy.service.slug)
        values["peak_windows"] = peak_windows or []
        values["stale_plan_made_at"] = stale_plan_made_at
        if time_zone:
            values["time_zone"] = time_zone
        if prometheus_url:
            values["prometheus_url"] = prometheus_url
        return cls(**values)

    @property
    def floor_replicas(self) -> int:
        """The minimum in force: lifted in emergency mode."""
        return max(self.min_replicas, self.emergency_min_replicas) if self.emergency_mode else self.min_replicas

    @property
    def hpa_resources(self) -> list[str]:
        return [r for r, target in (("cpu", self.target_cpu_pct), ("memory", self.target_memory_pct)) if target]


def vpa_resolution(spec: ServiceScaling) -> tuple[str, list[str], str]:
    """(updateMode, controlledResources, why): never a resource the HPA scales on, unless only recommending."""
    if spec.vpa_mode == "Off":
        return "Off", list(RESOURCES), "VPA recommends requests only (updateMode Off); the HPA scales out."
    free = [r for r in RESOURCES if r not in spec.hpa_resources]
    if not free:
        return (
            "Off",
            list(RESOURCES),
            f"Requested VPA mode {spec.vpa_mode}, but the HPA scales on {' and '.join(spec.hpa_resources)}: "
            "the VPA only recommends (updateMode Off) so the two never fight.",
        )
    return (
        spec.vpa_mode,
        free,
        f"VPA ({spec.vpa_mode}) sizes {', '.join(free)} only; the HPA scales out on "
        f"{', '.join(spec.hpa_resources) or 'requests per pod'}.",
    )


def _plain(model) -> dict:
    return client.ApiClient().sanitize_for_serialization(model)


def _labels(spec: ServiceScaling) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/managed-by": MANAGED_BY}


def _metadata(spec: ServiceScaling, annotations: dict | None = None) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=spec.name, namespace=spec.namespace, labels=_labels(spec), annotations=annotations)


# How long a pod may take to answer /healthz after it starts (loading its model) before it is restarted.
STARTUP_SECONDS = 600


def _probe(path: str, *, period: int, timeout: int, failures: int) -> client.V1Probe:
    return client.V1Probe(
        http_get=client.V1HTTPGetAction(path=path, port="http"),
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
    )


def deployment(spec: ServiceScaling) -> dict:
    container = client.V1Container(
        name=spec.name,
        image=spec.image or f"{spec.name}:latest",
        ports=[client.V1ContainerPort(container_port=spec.container_port, name="http")],
        resources=client.V1ResourceRequirements(
            requests={"cpu": spec.cpu_request, "memory": spec.memory_request},
            limits={"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        ),
        # A model service may load its weights for minutes, and answers slowly while it infers at its peak. With
        # the defaults (1 s timeout, no startup probe) liveness killed a pod still loading after 30 s (a crash
        # loop it never left) and pods whose /healthz waited behind inference at the peak (restarted as the
        # load came, their share thrown on the others). Liveness starts once /healthz has answered, and
        # restarts only a pod unresponsive for a minute; readiness takes a slow one out of rotation first.
        startup_probe=_probe("/healthz", period=10, timeout=5, failures=STARTUP_SECONDS // 10),
        liveness_probe=_probe("/healthz", period=10, timeout=5, failures=6),
        readiness_probe=_probe("/readyz", period=5, timeout=3, failures=3),
        # The Service's endpoints and the ingress drop a terminating pod a few seconds after its SIGTERM, and
        # each scale-down sent it requests meanwhile, refused. The kubelet's own sleep: no binary in the image.
        lifecycle=client.V1Lifecycle(pre_stop=client.V1LifecycleHandler(sleep=client.V1SleepAction(seconds=5))),
        # No setuid binary lifts a compromised process (a model parses what clinicians send) above its user.
        # Run-as-user, capabilities and the root filesystem are the image's to choose: one that runs as root
        # or writes to its own files would not start without them.
        security_context=client.V1SecurityContext(allow_privilege_escalation=False),
    )
    # No spec.replicas: the autoscaler owns the count, and an apply must not reset it.
    return _plain(
        client.V1Deployment(
            api_version="apps/v1",
            kind="Deployment",
            metadata=_metadata(spec),
            spec=client.V1DeploymentSpec(
                selector=client.V1LabelSelector(match_labels={"app.kubernetes.io/name": spec.name}),
                # A new image's rollout took a quarter of the replicas (the default maxUnavailable) away before
                # their successors were ready: at a peak planned at 70% of capacity, the rest were overrun.
                # New pods come first; a cluster without room for them stalls the rollout, not the service.
                strategy=client.V1DeploymentStrategy(
                    type="RollingUpdate",
                    rolling_update=client.V1RollingUpdateDeployment(max_unavailable=0, max_surge="25%"),
                ),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=_labels(spec)),
                    # The service never calls the Kubernetes API: every pod held the namespace's default
                    # service account token, usable against the API server with whatever it is bound to.
                    spec=client.V1PodSpec(
                        containers=[container],
                        automount_service_account_token=False,
                        security_context=client.V1PodSecurityContext(
                            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")
                        ),
                    ),
                ),
            ),
        )
    )


def service(spec: ServiceScaling) -> dict:
    return _plain(
        client.V1Service(
            api_version="v1",
            kind="Service",
            metadata=_metadata(spec),
            spec=client.V1ServiceSpec(
                selector={"app.kubernetes.io/name": spec.name},
                ports=[client.V1ServicePort(name="http", port=80, target_port="http")],
            ),
        )
    )


def behavior(spec: ServiceScaling) -> dict:
    """Scale up fast (100% per 60 s), down slowly (10% per 300 s), each after its stabilization window."""
    return _plain(client.V2HorizontalPodAutoscalerBehavior(**_behavior_models(spec)))


def _hpa_metrics(spec: ServiceScaling) -> list:
    metrics = [
        client.V2MetricSpec(
            type="Resource",
            resource=client.V2ResourceMetricSource(
                name=resource,
                target=client.V2MetricTarget(type="Utilization", average_utilization=target),
            ),
        )
        for resource, target in (("cpu", spec.target_cpu_pct), ("memory", spec.target_memory_pct))
        if target
    ]
    if spec.target_rps_per_pod:
        metrics.append(
            client.V2MetricSpec(
                type="Pods",
                pods=client.V2PodsMetricSource(
                    metric=client.V2MetricIdentifier(name="http_requests_per_second"),
                    target=client.V2MetricTarget(type="AverageValue", average_value=_quantity(spec.target_rps_per_pod)),
                ),
            )
        )
    return metrics


def _quantity(value: float) -> str:
    """A quantity; NaN or infinity (a policy stored past the model's bounds) as written, which the validation
    refuses: their arithmetic raised, and the checker's pass stopped at that policy, every other one after it."""
    if not math.isfinite(value):
        return str(value)
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def hpa(spec: ServiceScaling) -> dict:
    return _plain(
        client.V2HorizontalPodAutoscaler(
            api_version="autoscaling/v2",
            kind="HorizontalPodAutoscaler",
            metadata=_metadata(spec, {f"{ANNOTATION}/emergency-mode": str(spec.emergency_mode).lower()}),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=spec.name
                ),
                min_replicas=spec.floor_replicas,
                max_replicas=spec.max_replicas,
                metrics=_hpa_metrics(spec),
                behavior=client.V2HorizontalPodAutoscalerBehavior(**_behavior_models(spec)),
            ),
        )
    )


def _behavior_models(spec: ServiceScaling) -> dict:
    def rules(stabilization: int, percent: int, period: int):
        return client.V2HPAScalingRules(
            stabilization_window_seconds=stabilization,
            select_policy="Max",
            policies=[client.V2HPAScalingPolicy(type="Percent", value=percent, period_seconds=period)],
        )

    return {
        "scale_up": rules(spec.scale_up_stabilization_seconds, spec.scale_up_percent, spec.scale_up_period_seconds),
        "scale_down": rules(
            spec.scale_down_stabilization_seconds, spec.scale_down_percent, spec.scale_down_period_seconds
        ),
    }


def pdb(spec: ServiceScaling) -> dict:
    return _plain(
        client.V1PodDisruptionBudget(
            api_version="policy/v1",
            kind="PodDisruptionBudget",
            metadata=_metadata(spec),
            spec=client.V1PodDisruptionBudgetSpec(
                max_unavailable=spec.pdb_max_unavailable,
                selector=client.V1LabelSelector(match_labels={"app.kubernetes.io/name": spec.name}),
            ),
        )
    )


def vpa(spec: ServiceScaling) -> dict:
    """A custom resource (autoscaling.k8s.io/v1): the client has no model for it, so a plain dict."""
    mode, controlled, why = vpa_resolution(spec)
    return {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": _labels(spec),
            "annotations": {f"{ANNOTATION}/hpa-vpa-resolution": why},
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "updatePolicy": {"updateMode": mode},
            "resourcePolicy": {
                "containerPolicies": [
                    {
                        "containerName": spec.name,
                        "controlledResources": controlled,
                        "minAllowed": {"cpu": spec.cpu_request, "memory": spec.memory_request},
                        "maxAllowed": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
                    }
                ]
            },
        },
    }


def scaled_object(spec: ServiceScaling) -> dict:
    """KEDA owns the HPA when enabled: resource triggers, requests per pod from Prometheus, and a cron
    trigger per forecast peak so replicas are there before the load (never a second HPA beside it)."""
    triggers = [
        {"type": resource, "metricType": "Utilization", "metadata": {"value": str(target)}}
        for resource, target in (("cpu", spec.target_cpu_pct), ("memory", spec.target_memory_pct))
        if target
    ]
    if spec.target_rps_per_pod:
        address, auth_mode = prometheus_server(spec.prometheus_url)
        trigger = {
            "type": "prometheus",
            "metadata": {
                "serverAddress": address,
                "query": f'sum(rate(controlplane_request_latency_seconds_count{{service="{spec.name}"}}[2m]))',
                "threshold": str(spec.target_rps_per_pod),
            },
        }
        if auth_mode:
            trigger["metadata"]["authModes"] = auth_mode
            trigger["authenticationRef"] = {"name": spec.name}
        triggers.append(trigger)
    for window in spec.peak_windows:
        triggers.append(
            {
                "type": "cron",
                "metadata": {
                    "timezone": spec.time_zone,
                    "start": f"{window.get('start_minute', 0)} {window['start_hour']} * * *",
                    "end": f"{window.get('end_minute', 0)} {window['end_hour'] % 24} * * *",
                    "desiredReplicas": str(window["replicas"]),
                },
            }
        )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": _labels(spec),
            "annotations": {
                f"{ANNOTATION}/emergency-mode": str(spec.emergency_mode).lower(),
                **({f"{ANNOTATION}/stale-plan-made-at": spec.stale_plan_made_at} if spec.stale_plan_made_at else {}),
            },
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicaCount": spec.floor_replicas,
            "maxReplicaCount": spec.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(spec)}},
            "triggers": triggers,
        },
    }


def prometheus_server(url: str) -> tuple[str, str | None]:
    """(the URL without its credentials, KEDA's authModes for them or None). Credentials in the URL
    (https://user:password@host for basic auth, https://:token@host for a bearer token) are the control
    plane's; written into the ScaledObject they were readable by anyone who can read the namespace's objects,
    in every export and in the admin's preview."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    mode = "bearer" if not parts.username and parts.password else "basic"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), mode


def trigger_authentication(spec: ServiceScaling, mode: str) -> dict:
    """KEDA's TriggerAuthentication for the prometheus trigger: it names the keys of PROMETHEUS_AUTH_SECRET."""
    parameters = ("bearerToken",) if mode == "bearer" else ("username", "password")
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": _labels(spec)},
        "spec": {
            "secretTargetRef": [
                {"parameter": parameter, "name": PROMETHEUS_AUTH_SECRET, "key": parameter} for parameter in parameters
            ]
        },
    }


def documents(spec: ServiceScaling) -> dict[str, dict]:
    """{filename: manifest} for one service."""
    built = {
        f"{spec.name}-deployment.yaml": deployment(spec),
        f"{spec.name}-service.yaml": service(spec),
        f"{spec.name}-pdb.yaml": pdb(spec),
        f"{spec.name}-vpa.yaml": vpa(spec),
    }
    if spec.keda_enabled:
        built[f"{spec.name}-scaledobject.yaml"] = scaled_object(spec)
        auth_mode = prometheus_server(spec.prometheus_url)[1] if spec.target_rps_per_pod else None
        if auth_mode:
            built[f"{spec.name}-triggerauthentication.yaml"] = trigger_authentication(spec, auth_mode)
    else:
        built[f"{spec.name}-hpa.yaml"] = hpa(spec)
    return built


def to_yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def digest(docs: dict[str, dict]) -> str:
    return hashlib.sha256("".join(to_yaml(docs[name]) for name in sorted(docs)).encode()).hexdigest()


# --- validation -----------------------------------------------------------------------------------


def _rules_errors(where: str, rules: dict | None) -> list[str]:
    errors = []
    if not rules:
        return errors
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and not 0 <= window <= 3600:
        errors.append(f"{where}.stabilizationWindowSeconds {window}: must be 0-3600")
    for policy in rules.get("policies", []):
        if not 1 <= policy.get("periodSeconds", 0) <= 1800:
            errors.append(f"{where}.policies.periodSeconds {policy.get('periodSeconds')}: must be 1-1800")
        if policy.get("value", 0) <= 0:
            errors.append(f"{where}.policies.value {policy.get('value')}: must be above 0")
    return errors


def _parsed_quantity(text) -> Decimal | None:
    from kubernetes.utils import parse_quantity

    try:
        value = parse_quantity(text)
    except ValueError:
        return None
    return value if value.is_finite() else None


def _resources_errors(container: dict) -> list[str]:
    """A container's requests and limits: readable, above 0, and no request above its limit (the API server
    refuses that; the schema checks only that each is a quantity)."""
    resources, errors = container.get("resources") or {}, []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind, values in parsed.items():
        for resource, text in (resources.get(kind) or {}).items():
            value = _parsed_quantity(text)
            if value is None:
                errors.append(f"{kind}.{resource} {text!r}: not a quantity")
                continue
            if value <= 0:
                errors.append(f"{kind}.{resource} {text}: must be above 0")
            values[resource] = value
    for resource, request in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and request > limit:
            errors.append(
                f"requests.{resource} {resources['requests'][resource]}: must not be above "
                f"limits.{resource} {resources['limits'][resource]}"
            )
    return errors


def _name_errors(document: dict) -> list[str]:
    metadata, errors = document.get("metadata", {}), []
    name = metadata.get("name", "")
    if not NAME.fullmatch(name):
        errors.append(f"metadata.name {name!r}: must be a lower-case RFC 1035 label (a-z, 0-9, '-'; 63 at most)")
    for key, value in (metadata.get("labels") or {}).items():
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            errors.append(f"label {key} {value!r}: must be 63 characters at most of A-Z, a-z, 0-9, '-', '_', '.'")
    return errors


def range_errors(document: dict) -> list[str]:
    """What the API server would refuse, checked here (CRDs included, which the schemas do not cover)."""
    from apps.scaling.models import MAX_REPLICAS_LIMIT

    kind, spec = document.get("kind"), document.get("spec", {})
    errors = _name_errors(document)
    if kind == "Deployment":
        for container in spec.get("template", {}).get("spec", {}).get("containers", []):
            errors += _resources_errors(container)
            for port in container.get("ports") or []:
                if not _whole(port.get("containerPort"), 1) or port["containerPort"] > 65535:
                    errors.append(f"containerPort {port.get('containerPort')}: must be 1-65535")
    elif kind == "HorizontalPodAutoscaler":
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if low < 1:
            errors.append(f"minReplicas {low}: must be at least 1")
        if high < low:
            errors.append(f"maxReplicas {high}: must be at least minReplicas {low}")
        # The model's bound, checked again here: a count stored past it (raw SQL, the shell, a fixture, a
        # release before the bound) went to the cluster as the HPA's, which would create pods until the quota
        # or the nodes ran out.
        for name, count in (("minReplicas", low), ("maxReplicas", high)):
            if count > MAX_REPLICAS_LIMIT:
                errors.append(f"{name} {count}: must be at most {MAX_REPLICAS_LIMIT:,}")
        if not spec.get("metrics"):
            errors.append("metrics: at least one")
        for metric in spec.get("metrics", []):
            target = (metric.get("resource") or {}).get("target", {})
            if target.get("type") == "Utilization" and not 1 <= target.get("averageUtilization", 0) <= 100:
                errors.append(f"averageUtilization {target.get('averageUtilization')}: must be 1-100")
            value = ((metric.get("pods") or {}).get("target") or {}).get("averageValue")
            if value is not None and not (_parsed_quantity(value) or 0) > 0:
                errors.append(f"pods averageValue {value}: must be a quantity above 0")
        for direction in ("scaleUp", "scaleDown"):
            errors += _rules_errors(f"behavior.{direction}", spec.get("behavior", {}).get(direction))
    elif kind == "ScaledObject":
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 0)
        if not (_whole(low, 0) and _whole(high, 1)):  # KEDA's CRD: int32 counts, no schema check offline
            errors.append(f"minReplicaCount {low}, maxReplicaCount {high}: must be whole, at least 0 and 1")
        elif high < max(low, 1):
            errors.append(f"maxReplicaCount {high}: must be at least minReplicaCount {low} and 1")
        for name, count in (("minReplicaCount", low), ("maxReplicaCount", high)):
            if _whole(count, 0) and count > MAX_REPLICAS_LIMIT:
                errors.append(f"{name} {count}: must be at most {MAX_REPLICAS_LIMIT:,}")
        if not spec.get("triggers"):
            errors.append("triggers: at least one")
        behavior_spec = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        for direction in ("scaleUp", "scaleDown"):
            errors += _rules_errors(f"behavior.{direction}", behavior_spec.get(direction))
        for trigger in spec.get("triggers", []):
            errors += _trigger_errors(trigger, high)
    elif kind == "VerticalPodAutoscaler":
        mode = spec.get("updatePolicy", {}).get("updateMode")
        if mode not in ("Off", "Initial", "Recreate", "Auto", "InPlaceOrRecreate"):
            errors.append(f"updateMode {mode!r}: not a VPA mode")
        for policy in spec.get("resourcePolicy", {}).get("containerPolicies", []):
            extra = set(policy.get("controlledResources", [])) - set(RESOURCES)
            if extra:
                errors.append(f"controlledResources {sorted(extra)}: only cpu and memory")
    elif kind == "PodDisruptionBudget":
        if "minAvailable" in spec and "maxUnavailable" in spec:
            errors.append("minAvailable and maxUnavailable: only one")
        budget = spec.get("maxUnavailable", 0)
        if not isinstance(budget, str) and not _whole(budget, 0):
            errors.append(f"maxUnavailable {budget}: must be a whole number, at least 0, or a percentage")
        elif not isinstance(budget, str) and budget > MAX_REPLICAS_LIMIT:
            errors.append(f"maxUnavailable {budget}: must be at most {MAX_REPLICAS_LIMIT:,}")
    return errors


def _whole(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


_CRON = re.compile(r"(\d{1,2}) (\d{1,2}) \* \* \*")


def _trigger_errors(trigger: dict, high) -> list[str]:
    """KEDA's triggers take strings the CRD does not check: KEDA refuses them when it reads the object."""
    metadata, errors = trigger.get("metadata") or {}, []
    if trigger["type"] in RESOURCES:
        value = str(metadata.get("value", ""))
        if not (value.isdigit() and 1 <= int(value) <= 100):
            errors.append(f"{trigger['type']} trigger value {value!r}: must be 1-100")
    elif trigger["type"] == "prometheus":
        threshold = _parsed_quantity(str(metadata.get("threshold", "")))
        if not (threshold or 0) > 0:
            errors.append(f"prometheus threshold {metadata.get('threshold')!r}: must be above 0")
    elif trigger["type"] == "cron":
        desired = str(metadata.get("desiredReplicas", ""))
        if not (desired.isdigit() and _whole(high, 1) and 0 < int(desired) <= high):
            errors.append(f"cron desiredReplicas {desired}: must be a whole number, 1-{high}")
        for field in ("start", "end"):
            when = _CRON.fullmatch(str(metadata.get(field, "")))
            if when is None or int(when[1]) > 59 or int(when[2]) > 23:
                errors.append(f"cron {field} {metadata.get(field)!r}: must be 'minute hour * * *', 0-59 and 0-23")
        if metadata.get("start") == metadata.get("end"):
            errors.append(f"cron start and end {metadata.get('start')!r}: must differ")
    return errors


def conflict_errors(docs: dict[str, dict]) -> list[str]:
    """An HPA (or KEDA) scaling on a resource that an acting VPA also controls."""
    scaled_on: set[str] = set()
    for document in docs.values():
        if document["kind"] == "HorizontalPodAutoscaler":
            scaled_on |= {m["resource"]["name"] for m in document["spec"]["metrics"] if m["type"] == "Resource"}
        elif document["kind"] == "ScaledObject":
            scaled_on |= {t["type"] for t in document["spec"]["triggers"] if t["type"] in RESOURCES}
    errors = []
    for document in docs.values():
        if document["kind"] != "VerticalPodAutoscaler" or document["spec"]["updatePolicy"]["updateMode"] == "Off":
            continue
        for policy in document["spec"]["resourcePolicy"]["containerPolicies"]:
            both = scaled_on & set(policy.get("controlledResources", RESOURCES))
            if both:
                errors.append(f"HPA and VPA both act on {', '.join(sorted(both))}")
    return errors


@functools.cache
def _kubernetes_validate():
    """kubernetes_validate, its schema files parsed once per process: its validate() read and parsed them on every
    call (the 1.6 MB _definitions.json too: tens of ms a manifest), and the scaling admin validates a policy's
    manifests on each view of its page (manifest_preview): a fifth of the time of each view and refused form."""
    import kubernetes_validate
    from kubernetes_validate import utils

    utils.schema_contents = functools.cache(utils.schema_contents)  # the schemas are only read, never changed
    return kubernetes_validate


def validate(docs: dict[str, dict]) -> list[str]:
    """Schema (kubernetes-validate, built-in kinds), ranges (every kind) and the HPA/VPA rule."""
    kubernetes_validate = _kubernetes_validate()
    errors = []
    for filename, document in docs.items():
        if document["apiVersion"] in BUILT_IN:
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{filename}: {exc.message}")
        errors += [f"{filename}: {error}" for error in range_errors(document)]
    return errors + conflict_errors(docs)


def _declared(hint) -> tuple[type, ...]:
    """The types a field's annotation names (int | None: int, NoneType)."""
    return tuple(
        typing.get_origin(one) or one
        for one in (typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,))
    )


def _accepted(declared: tuple[type, ...]) -> tuple[type, ...]:
    """A number field takes any number: whether a count is whole, the manifests' own checks say (2.5
    replicas: "is not of type 'integer'", as before); a string there failed with a TypeError."""
    return (*declared, int, float) if int in declared or float in declared else declared


def _of_type(value, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:  # True is an int to isinstance, not to the API server
        return False
    return isinstance(value, accepted)


def config_errors(spec: ServiceScaling) -> list[str]:
    """What the policy's model refuses and the manifests do not show: each field's type (a "2" for a number
    failed later with a TypeError), the namespace a DNS label and the image a reference (the API server or
    the kubelet refused those only once applied)."""
    from django.core.exceptions import ValidationError

    from apps.scaling.models import DNS_LABEL, IMAGE_REFERENCE

    hints = typing.get_type_hints(ServiceScaling)
    errors = []
    for item in fields(spec):
        declared = _declared(hints[item.name])
        if not _of_type(getattr(spec, item.name), _accepted(declared)):
            names = " or ".join("None" if kind is type(None) else kind.__name__ for kind in declared)
            errors.append(f"{item.name} {getattr(spec, item.name)!r}: must be of type {names}")
        elif isinstance(getattr(spec, item.name), float) and not math.isfinite(getattr(spec, item.name)):
            errors.append(f"{item.name} {getattr(spec, item.name)!r}: must be a finite number")
    for name, validator, required in (("namespace", DNS_LABEL, True), ("image", IMAGE_REFERENCE, False)):
        value = getattr(spec, name)
        if isinstance(value, str) and (value or required):
            try:
                validator(value)
            except ValidationError as exc:
                errors.append(f"{name} {value!r}: {exc.messages[0]}")
    return errors


class MedicalAIServiceAutoscalingConfig:
    """The brief's API: `MedicalAIServiceAutoscalingConfig().generate_complete_config(service_config)`."""

    def generate_complete_config(self, service_config: dict | ServiceScaling) -> dict[str, str]:
        """{filename: YAML} of every manifest; raises ValueError when any would be refused."""
        spec = (
            service_config if isinstance(service_config, ServiceScaling) else ServiceScaling.from_config(service_config)
        )
        errors = config_errors(spec)
        if errors:
            raise ValueError("; ".join(errors))
        docs = documents(spec)
        errors = validate(docs)
        if errors:
            raise ValueError("; ".join(errors))
        return {filename: to_yaml(document) for filename, document in docs.items()}
