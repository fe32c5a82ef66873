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


def object_ref(document: dict) -> dict[str, str]:
    """What names an object on the cluster, as kept on the policy once applied."""
    metadata = document["metadata"]
    return {"apiVersion": document["apiVersion"], "kind": document["kind"],
            "namespace": metadata["namespace"], "name": metadata["name"]}  # fmt: skip


def delete_object(api: client.ApiClient, ref: dict[str, str]) -> None:
    """Delete one object we applied before; already gone is fine."""
    key = (ref["apiVersion"], ref["kind"])
    if key not in RESOURCES:
        raise ApplyError(f"No API path known for {key}")
    path = RESOURCES[key].format(namespace=ref["namespace"]) + f"/{ref['name']}"
    try:
        api.call_api(
            path, "DELETE", header_params={"Accept": "application/json"},
            response_types_map={200: "object", 202: "object"}, auth_settings=["BearerToken"],
            _return_http_data_only=True, _request_timeout=settings.SCALING_APPLY_TIMEOUT_SECONDS,
        )  # fmt: skip
    except client.ApiException as exc:
        if exc.status != 404:
            raise ApplyError(f"{ref['kind']} {ref['name']}: not removed: HTTP {exc.status} {exc.reason}") from exc
    except Exception as exc:
        raise ApplyError(f"{ref['kind']} {ref['name']}: not removed: {type(exc).__name__}: {exc}") from exc


def apply_documents(documents: list[dict], *, remove: list[dict[str, str]] = ()) -> list[str]:
    """Dry-run every document on the server, then apply them all (nothing is applied if a dry run fails),
    then delete the `remove` objects. A failure after the dry runs (the API server gone mid-way) says which
    objects were applied before it: the cluster holds part of the new manifests until the retry applies
    them all."""
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
        # Objects applied before that the manifests no longer have (the HPA once KEDA's ScaledObject
        # replaces it, a renamed service's or moved namespace's), removed once their successors are in.
        for ref in remove:
            delete_object(api, ref)
            applied.append(f"removed {ref['kind']}/{ref['name']}")
        return applied
    finally:
        api.close()
