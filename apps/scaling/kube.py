"""Server-side apply to a Kubernetes API server through the official client (a dry run first).

No cluster exists on the development machine: the tests run this against a fake API server on loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings

from apps.scaling.lazy import LazyModule

# Imported when the cluster is first reached: not by every process that loads the scaling services.
client = LazyModule("kubernetes.client")
config = LazyModule("kubernetes.config")

logger = logging.getLogger(__name__)

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
    ("keda.sh/v1alpha1", "TriggerAuthentication"):
        "/apis/keda.sh/v1alpha1/namespaces/{namespace}/triggerauthentications",
}  # fmt: skip


class ApplyError(Exception):
    """`applied`: the objects (object_ref) an apply failing after its dry runs had put on the cluster before
    it failed, or may have (a request that got no answer): they scale the service whatever the outcome, so
    the policy keeps them to withdraw. `answered`: False when the API server gave no answer (a timeout, a
    connection cut): the request may have reached it and been carried out all the same."""

    def __init__(self, message: str, *, applied: list[dict[str, str]] = (), answered: bool = True):
        super().__init__(message)
        self.applied = list(applied)
        self.answered = answered


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
        # Status 0: the client's own error (TLS cut off mid-request), not an answer from the API server.
        raise ApplyError(
            f"{document['kind']} {metadata['name']}: HTTP {exc.status} {exc.reason}: {exc.body}",
            answered=bool(exc.status),
        ) from exc
    except Exception as exc:  # connection refused, timeouts, TLS: the cluster did not answer
        raise ApplyError(f"{document['kind']} {metadata['name']}: {type(exc).__name__}: {exc}", answered=False) from exc


# The kinds that set a Deployment's replicas: two on one Deployment fight, and KEDA's admission webhook
# refuses a ScaledObject for a Deployment another HPA or ScaledObject already scales.
AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")


def object_ref(document: dict, applied: dict | None = None) -> dict[str, str]:
    """What names an object on the cluster, as kept on the policy once applied; with `applied` (the API
    server's answer to the apply) its uid too: a removal deletes that object only, not another one created
    under its name since (a new policy's, one made by hand)."""
    metadata = document["metadata"]
    ref = {"apiVersion": document["apiVersion"], "kind": document["kind"],
           "namespace": metadata["namespace"], "name": metadata["name"]}  # fmt: skip
    uid = ((applied or {}).get("metadata") or {}).get("uid")
    if uid:
        ref["uid"] = uid
    return ref


def ref_key(ref: dict) -> tuple[str, str, str, str]:
    """A ref as it names the object, whatever uid it was recorded with (refs recorded before uids have none)."""
    return ref["apiVersion"], ref["kind"], ref["namespace"], ref["name"]


# Each apply stamps its objects with the policy's generation (apply_generation, counted under the row's lock
# by every apply and withdrawal): a re-apply of unchanged manifests changes the object all the same, so a
# DELETE conditional on the resourceVersion read before it cannot remove what an apply put there since.
GENERATION_ANNOTATION = "scaling.controlplane.io/apply-generation"
# A DELETE refused for a resourceVersion changed meanwhile (the HPA controller writes its status every 15 s)
# is read and tried again this many times.
DELETE_TRIES = 5


def stamped(document: dict, generation: int) -> dict:
    """The document with the apply's generation among its annotations (not part of the manifests' digest)."""
    metadata = document["metadata"]
    annotations = {**(metadata.get("annotations") or {}), GENERATION_ANNOTATION: str(generation)}
    return {**document, "metadata": {**metadata, "annotations": annotations}}


def _generation(obj: dict) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(GENERATION_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # applied before the stamp, or by hand


def _object_path(ref: dict[str, str]) -> str:
    paths = [path for (_, kind), path in RESOURCES.items() if kind == ref["kind"]]
    if not paths:
        raise ApplyError(f"No API path known for {ref['kind']}")
    return paths[0].format(namespace=ref["namespace"]) + f"/{ref['name']}"


def _read(api: client.ApiClient, path: str, ref: dict[str, str]) -> dict:
    """The object as the API server has it now; {} where the credentials may not read it (a Role copied
    before `get` was granted): the DELETE then goes on the uid applied alone (none recorded: without
    preconditions, as before), and the log says so."""
    try:
        return api.call_api(
            path, "GET", header_params={"Accept": "application/json"}, response_types_map={200: "object"},
            auth_settings=["BearerToken"], _return_http_data_only=True,
            _request_timeout=settings.SCALING_APPLY_TIMEOUT_SECONDS,
        )  # fmt: skip
    except client.ApiException as exc:
        if exc.status != 403:
            raise
        logger.warning(
            "%s %s/%s: not readable (HTTP 403), deleted %s: grant `get` on it (see "
            "deploy/k8s/components/scaling-apply/rbac.yaml), or a withdrawal's DELETE arriving late can remove "
            "what a later apply put there", ref["kind"], ref["namespace"], ref["name"],
            "on the uid applied only" if ref.get("uid") else "without preconditions",
        )  # fmt: skip
        return {}


# delete_object's outcome for an object another one replaced under its name (its uid is not the recorded one).
NOT_OURS = "not ours"


def delete_object(
    api: client.ApiClient,
    ref: dict[str, str],
    *,
    uid: str | None = None,
    before_generation: int | None = None,
    later_apply: Callable[[], bool] | None = None,
) -> bool | str | None:
    """Delete one object we applied before; whether it was there (already gone is fine; None: left, a later
    apply's; NOT_OURS: left, another object holds its name). Found by its kind, not the apiVersion it was
    applied under: the API server serves one object under each of its kind's versions, and a version it no
    longer serves would answer 404 for an object still there.

    The object is read first and deleted only as read (DeleteOptions preconditions: its uid and
    resourceVersion): a DELETE that timed out here can still reach the API server later, after the policy was
    enabled and applied again, and it removed the new autoscaler while the policy said applied. As read, it
    is refused (409) once any apply has stamped the object since. `uid` (recorded when it was applied): the
    precondition is that uid, so an object deleted and created again under the name since (a new policy's, a
    hand-made one) is not ours, and is left. `before_generation` (a withdrawal's): an object stamped by that
    generation or a later one may be an apply's after the withdrawal; it is left only if `later_apply` says
    such an apply can exist (the counter goes back with a migration rolled back or a database restored, and
    the policy's own objects read as later than it)."""
    path = _object_path(ref)
    for _ in range(DELETE_TRIES):
        preconditions: dict[str, str] = {}
        try:
            obj = _read(api, path, ref)
            metadata = obj.get("metadata") or {}
            if uid and metadata.get("uid") and metadata["uid"] != uid:
                return NOT_OURS
            generation = _generation(obj)
            if (
                before_generation is not None
                and generation is not None
                and generation >= before_generation
                and (later_apply is None or later_apply())
            ):
                return None  # a later apply's: not this withdrawal's to remove
            preconditions = {key: metadata[key] for key in ("uid", "resourceVersion") if metadata.get(key)}
            if uid:
                preconditions["uid"] = uid
            api.call_api(
                path, "DELETE", header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions},
                response_types_map={200: "object", 202: "object"}, auth_settings=["BearerToken"],
                _return_http_data_only=True, _request_timeout=settings.SCALING_APPLY_TIMEOUT_SECONDS,
            )  # fmt: skip
        except client.ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:
                if uid and "resourceVersion" not in preconditions:
                    return NOT_OURS  # not readable (403): only the uid could have failed
                continue  # changed since it was read (its status, an apply, or replaced): read it again
            raise ApplyError(f"{ref['kind']} {ref['name']}: not removed: HTTP {exc.status} {exc.reason}") from exc
        except Exception as exc:
            raise ApplyError(f"{ref['kind']} {ref['name']}: not removed: {type(exc).__name__}: {exc}") from exc
        return True
    raise ApplyError(f"{ref['kind']} {ref['name']}: not removed: changed each of the {DELETE_TRIES} times it was read")


def remove_objects(
    refs: list[dict[str, str]],
    *,
    before_generation: int | None = None,
    later_apply: Callable[[], bool] | None = None,
    kept: list | None = None,
    not_ours: list | None = None,
) -> list[str]:
    """Delete objects we applied before (already gone is fine); the kind/name of each that was there. Each is
    deleted as the uid it was recorded with (none recorded: as read). `before_generation`, `later_apply`: as
    delete_object's; `kept` is given those left for a later apply, `not_ours` those left because another
    object holds the name now."""
    api = cluster_client()
    removed = []
    try:
        for ref in refs:
            outcome = delete_object(
                api, ref, uid=ref.get("uid"), before_generation=before_generation, later_apply=later_apply
            )
            if outcome == NOT_OURS:
                logger.warning(
                    "%s %s/%s: left, not the object applied (uid %s): another was created under its name since",
                    ref["kind"], ref["namespace"], ref["name"], ref.get("uid"),
                )  # fmt: skip
                if not_ours is not None:
                    not_ours.append(ref)
            elif outcome:
                removed.append(f"{ref['kind']}/{ref['name']}")
            elif outcome is None and kept is not None:
                kept.append(ref)
        return removed
    finally:
        api.close()


def apply_documents(
    documents: list[dict],
    *,
    replace: list[dict[str, str]] = (),
    remove: list[dict[str, str]] = (),
    recorded: list | None = None,
) -> list[str]:
    """Dry-run every document on the server, then apply them all (nothing is applied if a dry run fails),
    then delete the `remove` objects. The `replace` objects (an autoscaler whose successor scales the same
    Deployment) are deleted before their successors' dry runs, once every other document's has passed:
    KEDA's webhook refuses a ScaledObject, dry run included, while another autoscaler scales its
    Deployment. Until the successor is in, the replicas stay where they are. A failure after the dry runs
    (the API server gone mid-way) says which objects were applied or removed before it: the cluster holds
    part of the new manifests until the retry applies them all. `recorded` is given the ref of each object
    applied, with the uid the API server answered (ApplyError.applied has them too)."""
    api = cluster_client()
    successors = [document for document in documents if replace and document["kind"] in AUTOSCALER_KINDS]
    try:
        for document in documents:
            if document not in successors:
                server_side_apply(api, document, dry_run=True)
        removed = [f"{ref['kind']}/{ref['name']}" for ref in replace if delete_object(api, ref)]
        for document in successors:
            try:
                server_side_apply(api, document, dry_run=True)
            except ApplyError as exc:
                if not removed:
                    raise
                raise ApplyError(
                    f"{exc} (removed before it: {', '.join(removed)}; the Deployment keeps its replicas, "
                    "unscaled, until the retry applies the successor)"
                ) from exc
        applied: list[str] = []
        applied_refs: list[dict[str, str]] = []
        for document in documents:
            try:
                answer = server_side_apply(api, document, dry_run=False)
                applied.append(f"{document['kind']}/{answer['metadata']['name']}")
                applied_refs.append(object_ref(document, answer))
            except ApplyError as exc:
                done = [
                    f"{what} before it: {', '.join(names)}"
                    for what, names in (("applied", applied), ("removed", removed))
                    if names
                ]
                if not exc.answered:
                    # A request that timed out may have been applied all the same (the API server carries it
                    # out whether or not its answer comes back): kept as applied, or a disable or delete
                    # would not withdraw an autoscaler that may be scaling the service.
                    applied_refs.append(object_ref(document))
                    done.append(f"{document['kind']}/{document['metadata']['name']} may have been applied")
                if not done:
                    raise
                raise ApplyError(f"{exc} ({'; '.join(done)}; not the rest)", applied=applied_refs) from exc
        # Any other kind the manifests no longer have at the service's own name: nothing refuses it beside
        # the new objects, so it goes once they are in.
        try:
            removed += [f"{ref['kind']}/{ref['name']}" for ref in remove if delete_object(api, ref)]
        except ApplyError as exc:
            raise ApplyError(f"{exc} (every manifest applied before it)", applied=applied_refs) from exc
        if recorded is not None:
            recorded.extend(applied_refs)
        return applied + [f"removed {name}" for name in removed]
    finally:
        api.close()
