"""Server-side apply to a Kubernetes API server through the official client (a dry run first).

No cluster exists on the development machine: the tests run this against a fake API server on loopback.
"""

from __future__ import annotations

from django.conf import settings
from kubernetes import client, config

FIELD_MANAGER = "medical-ai-control-plane"

# Where each kind lives on the API server.
RESOURCES = {
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{namespace}/deployments",
    ("v1", "Service"): "/api/v1/namespaces/{namespace}/services",
    ("autoscaling/v2", "HorizontalPodAutoscaler"):
        "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
    ("autoscaling.k8s.io/v1", "VerticalPodAutoscaler"):
        "/apis/autoscaling.k8s.io/v1/namespaces/{namespace}/verticalpodautoscalers",
    ("keda.sh/v1alpha1", "ScaledObject"): "/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects",
}  # fmt: skip


class ApplyError(Exception):
    pass


def cluster_configured() -> bool:
    return bool(settings.SCALING_KUBECONFIG)


def cluster_client() -> client.ApiClient:
    """The API client for SCALING_KUBECONFIG: a kubeconfig path, or "in-cluster" for a service account.
    ApplyError when it cannot be built (a missing or unreadable kubeconfig, an unknown context, in-cluster
    outside a cluster), so the policy fails with the reason instead of staying APPLYING."""
    try:
        if settings.SCALING_KUBECONFIG == "in-cluster":
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(
            config_file=settings.SCALING_KUBECONFIG, context=settings.SCALING_KUBE_CONTEXT or None
        )
    except Exception as exc:  # ConfigException, OSError, and a malformed file's YAML or type errors
        raise ApplyError(f"SCALING_KUBECONFIG {settings.SCALING_KUBECONFIG!r} is not usable: {exc}") from exc


def server_side_apply(api: client.ApiClient, document: dict, *, dry_run: bool) -> dict:
    """PATCH application/apply-patch+yaml with our field manager, forcing ownership of our fields."""
    key = (document["apiVersion"], document["kind"])
    if key not in RESOURCES:
        raise ApplyError(f"No API path known for {key}")
    metadata = document["metadata"]
    path = RESOURCES[key].format(namespace=metadata["namespace"]) + f"/{metadata['name']}"
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
    try:
        return api.call_api(
            path,
            "PATCH",
            query_params=query,
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=document,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=settings.SCALING_APPLY_TIMEOUT_SECONDS,
        )
    except client.ApiException as exc:
        raise ApplyError(f"{document['kind']} {metadata['name']}: HTTP {exc.status} {exc.reason}: {exc.body}") from exc
    except Exception as exc:  # connection refused, timeouts, TLS: the cluster did not answer
        raise ApplyError(f"{document['kind']} {metadata['name']}: {type(exc).__name__}: {exc}") from exc


def apply_documents(documents: list[dict]) -> list[str]:
    """Dry-run every document on the server, then apply them all; nothing is applied if a dry run fails.
    A failure after the dry runs (the API server gone mid-way) says which objects were applied before it:
    the cluster holds part of the new manifests until the retry applies them all."""
    api = cluster_client()
    try:
        for document in documents:
            server_side_apply(api, document, dry_run=True)
        applied: list[str] = []
        for document in documents:
            try:
                applied.append(
                    f"{document['kind']}/{server_side_apply(api, document, dry_run=False)['metadata']['name']}"
                )
            except ApplyError as exc:
                if not applied:
                    raise
                raise ApplyError(f"{exc} (applied before it: {', '.join(applied)}; not the rest)") from exc
        return applied
    finally:
        api.close()
