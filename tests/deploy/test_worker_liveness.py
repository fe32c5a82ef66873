"""The worker's liveness probe reads a heartbeat file its event loop touches: a real worker keeps it fresh
through a broker outage (RabbitMQ behind a proxy the test closes) and lets it go stale when its loop
stands still. The probe is the manifests' own command, run as the kubelet would (no cluster here)."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from apps.core.liveness import MAX_AGE, TOUCH_INTERVAL
from tests.helpers import (
    REPO_ROOT,
    embedded_env,
    free_port,
    log_in_report,
    run_python,
    stop_group,
    touches_during,
    wait_for,
)

pytestmark = pytest.mark.slow

RABBITMQ = ("127.0.0.1", 5672)
# The test's worker touches its heartbeat this often (tests/deploy/liveness_tasks.py sets it in that worker):
# each wait on the timer below is a few of these, where TOUCH_INTERVAL (10 s) made the test wait a minute.
# The outage still spans 2 * TOUCH_INTERVAL: the retry loop's touches, not the timer's, keep the file fresh.
TEST_TOUCH_INTERVAL = 2.0
WORKER_DEPLOYMENT = REPO_ROOT / "deploy" / "k8s" / "base" / "worker-deployment.yaml"


class BrokerProxy:
    """A TCP proxy to RabbitMQ: closing it drops the worker's connection and leaves its broker URL on a
    closed port, as a restarting RabbitMQ does; opening it again on the same port brings the broker back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def close(self) -> None:
        # shutdown() first: close() alone leaves the port listening while a thread waits in accept().
        for sock in (self.listener, *self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(RABBITMQ)
            self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass


def _probe_command() -> list[str]:
    container = yaml.safe_load(WORKER_DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    return container["livenessProbe"]["exec"]["command"]


def _probe(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """The Deployment's probe command, from the repository root as the image's WORKDIR."""
    command = _probe_command()
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:], *extra], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=10
    )


def test_probe_passes_on_a_fresh_heartbeat_and_fails_on_a_stale_or_missing_one(tmp_path):
    heartbeat = tmp_path / "worker.heartbeat"
    env = {**os.environ, "CELERY_WORKER_HEARTBEAT_FILE": str(heartbeat)}
    missing = _probe(env)
    assert missing.returncode == 1 and "missing" in missing.stderr
    heartbeat.touch()
    assert _probe(env).returncode == 0
    stale = time.time() - MAX_AGE - 5
    os.utime(heartbeat, (stale, stale))
    result = _probe(env)
    assert result.returncode == 1 and "last touched" in result.stderr


def test_probe_starts_neither_django_nor_celery(tmp_path):
    """The kubelet runs it every period in a pod that is busy with benchmarks: the standard library only."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['liveness', 'worker']\n"
        "try:\n    runpy.run_module('apps.core.liveness', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'kombu', 'controlplane')))\n"
    )
    env = {**os.environ, "CELERY_WORKER_HEARTBEAT_FILE": str(tmp_path / "none")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_worker_heartbeat_survives_a_broker_outage_and_stops_with_its_event_loop(tmp_path, request):
    proxy = BrokerProxy(free_port())
    proxy.open()
    broker_url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    heartbeat = tmp_path / "worker.heartbeat"
    queue = f"liveness-{uuid.uuid4().hex[:8]}"  # its own queue: no other test's tasks
    env = embedded_env(
        tmp_path,
        CELERY_BROKER_URL=broker_url,
        CELERY_BROKER_CONNECTION_TIMEOUT="1",
        CELERY_WORKER_HEARTBEAT_FILE=str(heartbeat),
        LIVENESS_TEST_TOUCH_INTERVAL=str(TEST_TOUCH_INTERVAL),
    )
    log = log_in_report(request, tmp_path / "worker.log", "worker")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", queue, "-P", "solo",
         "-n", f"{queue}@localhost", "--include", "tests.deploy.liveness_tasks", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "ready." in log.read_text(), 120, "the worker to be ready", log)
        assert f"heartbeat every {TEST_TOUCH_INTERVAL} s" in log.read_text()
        assert _probe(env).returncode == 0

        # Connected and idle: the event loop's timer touches it.
        connected = touches_during(heartbeat, TEST_TOUCH_INTERVAL + 3, enough=2)
        assert len(connected) >= 2, connected

        # The broker goes away: the worker retries, alive, and the probe keeps passing.
        proxy.close()
        wait_for(lambda: "Cannot connect to amqp" in log.read_text(), 30, "the worker to notice the outage", log)
        outage = touches_during(heartbeat, 2 * TOUCH_INTERVAL)
        assert len(outage) >= 4 and max(b - a for a, b in itertools.pairwise(outage)) < 5, outage
        assert worker.poll() is None
        assert _probe(env, "--max-age", "5").returncode == 0

        # The broker is back: the worker reconnects and its event loop's timer touches the file again.
        reconnects = log.read_text().count("Connected to amqp")
        proxy.open()
        wait_for(lambda: log.read_text().count("Connected to amqp") > reconnects, 120, "the worker to reconnect", log)
        after = touches_during(heartbeat, TEST_TOUCH_INTERVAL + 3, enough=2)
        assert len(after) >= 2, after

        # A task on the solo pool holds the main thread: the loop stands still and the file goes stale.
        hold = TOUCH_INTERVAL * 3  # ended early by the cold shutdown below: a long hold costs nothing
        send = (
            "from controlplane.celery import app\n"
            f"app.send_task('tests.hold_the_main_loop', args=[{hold}], queue={queue!r})\n"
        )
        assert run_python(send, env).returncode == 0
        wait_for(lambda: "tests.hold_the_main_loop" in log.read_text(), 120, "the task to start", log)
        held_since = time.time()
        time.sleep(TEST_TOUCH_INTERVAL * 2)
        assert heartbeat.stat().st_mtime < held_since
        stale = _probe(env, "--max-age", str(TEST_TOUCH_INTERVAL * 1.5))
        assert stale.returncode == 1 and "last touched" in stale.stderr
    finally:
        # SIGQUIT, Celery's cold shutdown: a warm one waited out the rest of the held task (seconds), tested by nothing.
        stop_group(worker, signal.SIGQUIT, timeout=60)
        proxy.close()
        _delete_queue(queue)


def _delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}//", connect_timeout=5) as connection:
        connection.default_channel.queue_delete(queue)
