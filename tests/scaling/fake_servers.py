"""Fake HTTP servers on loopback for what cannot run here: a Kubernetes API server and Prometheus.

The Kubernetes one answers server-side apply PATCHes the way the real one does for our purposes (echo
the object, honour dryRun, refuse a name a v1 Service may not have); each test can make a kind fail. Real
clusters are not reachable here.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def _reply(handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FakeKubernetes:
    def __init__(self):
        self.requests: list[dict] = []
        self.fail: dict[str, int] = {}  # kind -> HTTP status to answer
        self.fail_apply: dict[str, int] = {}  # the same, for real applies only (their dry runs pass)
        self.deleted: list[str] = []  # paths of DELETE requests
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urlparse(self.path)
                fake.requests.append(
                    {
                        "path": url.path,
                        "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                        "content_type": self.headers["Content-Type"],
                        "authorization": self.headers.get("Authorization"),
                        "kind": body["kind"],
                    }
                )
                status = fake.fail.get(body["kind"], 200)
                if "dryRun" not in url.query:
                    status = fake.fail_apply.get(body["kind"], status)
                if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", body["metadata"]["name"]):
                    status = 422
                payload = body if status == 200 else {"kind": "Status", "status": "Failure", "message": "invalid"}
                _reply(self, status, payload)

            def do_DELETE(self):
                fake.deleted.append(urlparse(self.path).path)
                _reply(self, 200, {"kind": "Status", "status": "Success"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakePrometheus:
    """Answers /api/v1/query_range with the series it is given, and records the queries."""

    def __init__(self, values: list[tuple[float, float]]):
        self.queries: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                fake.queries.append({k: v[0] for k, v in parse_qs(url.query).items()})
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
