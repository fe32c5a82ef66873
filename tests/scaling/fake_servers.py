"""Fake HTTP servers on loopback for what cannot run here: a Kubernetes API server and Prometheus.

The Kubernetes one answers server-side apply PATCHes the way the real one does for our purposes (echo
the object, honour dryRun, refuse a name a v1 Service may not have, keep what was applied with a uid and a
resourceVersion that changes when the object does, answer a GET of it, answer 404 to a DELETE of what is
not there and 409 to one whose DeleteOptions preconditions no longer hold), and stands in for KEDA too:
its validating admission webhook, and the HPA it makes for a ScaledObject; each test can make a kind fail.
No Kubernetes cluster exists here: this is the only API server the tests have.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def _reply(handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _object_key(path: str) -> tuple[str, str, str, str]:
    """(group, resource, namespace, name) of an object's path: one object whichever version it is read,
    applied or deleted under, as on a real API server."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    namespace, resource, name = parts[-3:]
    return group, resource, namespace, name


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


class LoopbackServer:
    """An HTTP server of a fake on a free loopback port, in a thread; `stop()` ends it."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeKubernetes(LoopbackServer):
    def __init__(self):
        self.requests: list[dict] = []  # PATCHes and DELETEs, in the order they came
        self.fail: dict[str, int] = {}  # kind -> HTTP status to answer
        self.fail_apply: dict[str, int] = {}  # the same, for real applies only (their dry runs pass)
        self.deleted: list[str] = []  # paths of the DELETE requests that found their object
        self.objects: dict[tuple[str, str, str, str], dict] = {}  # what is applied, by _object_key
        self.reads: list[str] = []  # paths of the GET requests
        self.reads_forbidden = False  # credentials without `get` (a Role copied before it was granted): 403
        # Set to an Event, DELETEs wait for it before the server carries them out (a request the client gave
        # up on, timed out, that reaches the API server later); `landed`: (path, status) of each carried out.
        self.delete_gate: threading.Event | None = None
        self.gated_paths: set[str] | None = None  # the DELETEs the gate holds (None: all)
        self.landed: list[tuple[str, int]] = []
        self.versions = 0  # the last resourceVersion given
        # KEDA's validating admission webhook (on by default since KEDA 2.12): off stands for a cluster
        # without it, or one whose webhook is down under its default failurePolicy Ignore.
        self.keda_webhook = True
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urlparse(self.path)
                fake.requests.append(
                    {
                        "method": "PATCH",
                        "path": url.path,
                        "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                        "content_type": self.headers["Content-Type"],
                        "authorization": self.headers.get("Authorization"),
                        "kind": body["kind"],
                    }
                )
                dry_run = "dryRun" in url.query
                status = fake.fail.get(body["kind"], 200)
                if not dry_run:
                    status = fake.fail_apply.get(body["kind"], status)
                if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", body["metadata"]["name"]):
                    status = 422
                if status != 200:
                    _reply(self, status, _status(status, "Invalid", "invalid"))
                    return
                with fake.lock:
                    refusal = fake._keda_refusal(body) if body["kind"] == "ScaledObject" else None
                    if refusal is None and not dry_run:
                        body = fake._store(url.path, body)  # answered as stored: its uid, its resourceVersion
                if refusal:
                    # What the API server answers when KEDA's webhook (controller-runtime's Denied) says no.
                    message = f'admission webhook "vscaledobject.kb.io" denied the request: {refusal}'
                    _reply(self, 403, _status(403, "Forbidden", message))
                    return
                _reply(self, 200, body)

            def do_GET(self):
                path = urlparse(self.path).path
                fake.reads.append(path)
                with fake.lock:
                    there = fake.objects.get(_object_key(path))
                    status = fake.fail.get(there["kind"], 200) if there else 404
                if fake.reads_forbidden:
                    status = 403
                if status == 404:
                    _reply(self, 404, _status(404, "NotFound", f"{path.rsplit('/', 1)[-1]} not found"))
                elif status != 200:
                    _reply(self, status, _status(status, "Forbidden", "forbidden"))
                else:
                    _reply(self, 200, there)

            def do_DELETE(self):
                path = urlparse(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                options = json.loads(self.rfile.read(length)) if length else {}
                fake.requests.append({"method": "DELETE", "path": path, "query": {}, "kind": None, "body": options})
                gate = fake.delete_gate
                if gate is not None and (fake.gated_paths is None or path in fake.gated_paths):
                    gate.wait(timeout=30)
                status, payload = fake._delete(path, (options or {}).get("preconditions") or {})
                fake.landed.append((path, status))
                with contextlib.suppress(OSError):  # the client gave up waiting: carried out all the same
                    _reply(self, status, payload)

            def log_message(self, *args):
                pass

        self._serve(Handler)

    def kubeconfig(self, path) -> str:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "cp", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "cp"}}],
                    "current-context": "fake",
                }
            )
        )
        return str(path)

    def autoscalers_of(self, namespace: str, deployment: str) -> list[str]:
        """The HPAs (plain, or KEDA's for a ScaledObject) that scale one Deployment: more than one fight."""
        with self.lock:
            return sorted(
                obj["metadata"]["name"]
                for obj in self.objects.values()
                if obj["kind"] == "HorizontalPodAutoscaler"
                and obj["metadata"]["namespace"] == namespace
                and obj["spec"]["scaleTargetRef"]["name"] == deployment
            )

    def _delete(self, path: str, preconditions: dict) -> tuple[int, dict]:
        with self.lock:
            there = self.objects.get(_object_key(path))
            if there is None:
                return 404, _status(404, "NotFound", f"{path.rsplit('/', 1)[-1]} not found")
            status = self.fail.get(there["kind"], 200)
            if status != 200:
                return status, _status(status, "Forbidden", "forbidden")
            for key, wanted in preconditions.items():
                if there["metadata"].get(key) != wanted:
                    # As the API server words it (apiserver's registry store, a failed precondition).
                    message = f"Precondition failed: {key} in precondition: {wanted}, {key} in object meta: " + str(
                        there["metadata"].get(key)
                    )
                    return 409, _status(409, "Conflict", message)
            gone = self.objects.pop(_object_key(path))
            if gone["kind"] == "ScaledObject":
                # Its HPA goes with it (an owner reference: the garbage collector deletes it).
                self.objects.pop(self._keda_hpa_key(gone), None)
        self.deleted.append(path)
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _store(self, path: str, body: dict) -> dict:
        before = self.objects.get(_object_key(path))
        server_set = ("uid", "resourceVersion")
        metadata = {key: value for key, value in body["metadata"].items() if key not in server_set}
        body = {**body, "metadata": metadata}
        if before is not None:
            same = {**before, "metadata": {k: v for k, v in before["metadata"].items() if k not in server_set}}
            if same == body:
                return before  # an apply that changes nothing leaves the resourceVersion as it was
            metadata["uid"] = before["metadata"]["uid"]
        else:
            metadata["uid"] = str(uuid.uuid4())
        self.versions += 1
        metadata["resourceVersion"] = str(self.versions)
        self.objects[_object_key(path)] = body
        if body["kind"] == "ScaledObject":
            # KEDA's operator makes the HPA that does the scaling: keda-hpa-<name>, owned by the ScaledObject.
            name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
            self.objects[self._keda_hpa_key(body)] = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {
                    "name": f"keda-hpa-{name}",
                    "namespace": namespace,
                    "ownerReferences": [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name}],
                },
                "spec": {"scaleTargetRef": body["spec"]["scaleTargetRef"]},
            }
        return body

    @staticmethod
    def _keda_hpa_key(scaled_object: dict) -> tuple[str, str, str, str]:
        metadata = scaled_object["metadata"]
        return "autoscaling", "horizontalpodautoscalers", metadata["namespace"], f"keda-hpa-{metadata['name']}"

    def _keda_refusal(self, scaled_object: dict) -> str | None:
        """KEDA's webhook (on create, update and their dry runs): a workload is scaled by one autoscaler,
        so a ScaledObject is refused while an HPA it does not own, or another ScaledObject, scales its
        target. Worded as KEDA words it (kedacore/keda, scaledobject_webhook.go)."""
        if not self.keda_webhook:
            return None
        name, namespace = scaled_object["metadata"]["name"], scaled_object["metadata"]["namespace"]
        target = scaled_object["spec"]["scaleTargetRef"]
        workload = f"the workload '{target['name']}' of type '{target['apiVersion']}.{target['kind']}'"
        for obj in self.objects.values():
            if obj["metadata"]["namespace"] != namespace or obj.get("spec", {}).get("scaleTargetRef") != target:
                continue
            owners = [
                ref["name"] for ref in obj["metadata"].get("ownerReferences", []) if ref["kind"] == "ScaledObject"
            ]
            if obj["kind"] == "HorizontalPodAutoscaler" and name not in owners:
                if owners:
                    return f"{workload} is already managed by the ScaledObject '{owners[0]}'"
                return f"{workload} is already managed by the hpa '{obj['metadata']['name']}'"
            if obj["kind"] == "ScaledObject" and obj["metadata"]["name"] != name:
                return f"{workload} is already managed by the ScaledObject '{obj['metadata']['name']}'"
        return None


class FakePrometheus(LoopbackServer):
    """Answers /api/v1/query_range with the series it is given, and records the queries."""

    def __init__(self, values: list[tuple[float, float]]):
        self.queries: list[dict] = []
        self.authorizations: list[str | None] = []  # each query's Authorization header
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                fake.queries.append({k: v[0] for k, v in parse_qs(url.query).items()})
                fake.authorizations.append(self.headers.get("Authorization"))
                payload = {
                    "status": "success",
                    "data": {
                        "resultType": "matrix",
                        "result": [{"metric": {}, "values": [[t, str(v)] for t, v in values]}],
                    },
                }
                _reply(self, 200, payload)

            def log_message(self, *args):
                pass

        self._serve(Handler)
