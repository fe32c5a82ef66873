"""Receivers on loopback for the alerts' webhooks: one speaking HTTP, one answering something else; and the
alert evaluation as the beat task runs it."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.test import TestCase

from apps.metrics import services


@pytest.fixture
def webhook_receiver():
    """An HTTP server on loopback that keeps every JSON body posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/alerts", received
    server.shutdown()


@pytest.fixture
def non_http_receiver():
    """A server on loopback that answers every request like Redis does (a webhook pointed at a wrong port)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"-ERR unknown command 'POST'\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/alerts"
    stop.set()
    thread.join()
    listener.close()


def alerts_evaluate_committed(**options):
    """`alerts_evaluate` as the beat task runs it, outside any transaction: each rule's savepoint commits,
    and its pages go out then (on commit). A test's own transaction never commits, so its on-commit
    callbacks are run as the evaluation ends."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.alerts_evaluate(**options)


def host_sample(*, at=None, host: str = "worker-a", cpu: float = 10.0, memory: float = 10.0):
    """A resource monitor sample (the CPU and memory alerts read them, per host)."""
    from django.utils import timezone

    from apps.resources.models import ResourceSample

    sample = ResourceSample.objects.create(host=host, cpu_pct=cpu, memory_pct=memory, disk_pct=10.0)
    ResourceSample.objects.filter(pk=sample.pk).update(at=at or timezone.now())  # `at` is auto_now_add
    return sample
