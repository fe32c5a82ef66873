"""Receivers on loopback for the alerts' webhooks (one speaking HTTP, one answering something else), and the
deleted rule's "resolved" task run as it is queued."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest


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


@pytest.fixture
def resolution_sent_at_once(monkeypatch):
    """A deleted rule's "resolved" goes by a task (test_rule_delete_i2_queued.py): run here as it is queued."""
    from apps.metrics import tasks

    task = tasks.deleted_alert_resolution_send
    monkeypatch.setattr(task, "apply_async", lambda args=None, kwargs=None, **options: task(**kwargs))
