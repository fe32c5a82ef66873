"""A web process exiting while its database hangs (connections open, nothing answered: a failover in
progress, a dropped route behind a proxy) exits within the recorder's own bound and logs the request timings it
drops. It waited on libpq and the pool: 11-16 s per gunicorn worker, and for ever on a connection that stays
open. A real Python process with the product's settings, its database reached through a TCP proxy of the
test's own that stops forwarding on cue."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from tests.helpers import database_url

pytestmark = pytest.mark.django_db(transaction=True)

REPO_ROOT = Path(__file__).resolve().parents[2]

RECORD_THEN_EXIT_ON_CUE = """
import sys
import django
django.setup()
from django.db import connection
from apps.metrics.recorder import recorder
with connection.cursor() as cursor:  # the pool's connections are open, through the proxy
    cursor.execute("SELECT 1")
connection.close()
for elapsed_us in (900_000, 1_200_000):
    recorder.record(route="api/v1/exit-test/", method="GET", status=503, client="app", elapsed_us=elapsed_us)
print("ready", flush=True)
sys.stdin.readline()  # the test makes the database hang, then lets this process exit
"""


class HangingProxy:
    """Forwards TCP to PostgreSQL until `hang()`; from then on it reads and forwards nothing, and keeps every
    connection open (no reset, no close: the client's socket waits, its keepalives answered by this kernel)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.hung = threading.Event()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def hang(self) -> None:
        self.hung.set()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                source.settimeout(0.2)
                pump = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                self.threads.append(pump)
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self.stopped.is_set():
            if self.hung.is_set():
                self.stopped.wait(0.2)
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_an_exit_against_a_hung_database_is_bounded_and_says_what_it_drops():
    db = connection.settings_dict
    proxy = HangingProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    url = database_url().replace(f"@{db['HOST']}:{db['PORT']}/", f"@127.0.0.1:{proxy.port}/")
    env = {**os.environ, "DATABASE_URL": url, "METRICS_BACKGROUND_FLUSH": "true", "METRICS_FLUSH_SECONDS": "3600",
           "DJANGO_SETTINGS_MODULE": "controlplane.settings", "LOG_FORMAT": "plain"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", RECORD_THEN_EXIT_ON_CUE], cwd=REPO_ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        proxy.hang()
        # The bound is the recorder's (3 s); this deadline only stops a process that waits for ever.
        _, stderr = process.communicate("\n", timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the process was still waiting on its hung database 90 s after it was told to exit")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        proxy.close()
    assert process.returncode == 0, stderr
    assert "request timings not written at exit: the database did not answer within 3.0 s; 2 requests dropped" in (
        stderr
    )
