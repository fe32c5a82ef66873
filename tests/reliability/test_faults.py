"""Faults injected into services each test starts itself, on its own ports: PostgreSQL restarted under a
read/write load, a Celery worker killed in the middle of an optimization step, the broker down, and a
full disk for reports. What must hold: no 500, no partial write, no audit record lost, nothing stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.management import call_command

from apps.optimizer.models import OptimizationRun
from apps.optimizer.services import optimization_run_create, optimization_run_dispatch
from tests import postgres
from tests.helpers import (
    REPO_ROOT,
    VENV_BIN,
    database_url,
    embedded_env,
    free_port,
    log_in_report,
    manage,
    start_redis,
    stop_group,
    wait_for,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of the test's own, which the test may restart."""
    with postgres.private_postgres("max_connections=200") as server:
        yield server


def _request(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError as error:  # a connection refused or reset would be a lost request
        return 0, {"error": str(error)}


def _wait_healthy(base: str, token: str) -> None:
    wait_for(lambda: _request(f"{base}/healthz", token)[0] == 200, 60, f"{base}/healthz to answer 200")


def test_postgresql_restarted_under_load_loses_no_write_and_the_pool_recovers(private_postgres, tmp_path):
    env = embedded_env(tmp_path, DATABASE_URL=private_postgres.url, DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE="8")
    for command in (("migrate", "--noinput"), ("load_synthetic", "--patients", "4", "--days", "1", "--no-progress")):
        result = manage(*command, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    # The load is far above the seeded per-client limits: lift them, this test is about the database.
    lifted = manage("shell", "-c", "from apps.ratelimits.models import RateLimitPolicy as P; "
                    "P.objects.update(requests=1_000_000, burst_per_second=None)", env=env)  # fmt: skip
    assert lifted.returncode == 0, lifted.stderr
    port = free_port()
    seed = manage("seed_demo", "--base-url", f"http://127.0.0.1:{port}", env=env)
    token = json.loads((tmp_path / "demo-credentials.json").read_text())["api_token"]
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, token)
        patient = _request(f"{base}/api/v1/patients/", token)[1]["results"][0]["id"]
        outcomes: list[tuple[float, str, int, dict]] = []
        stop = time.monotonic() + 9

        def load(writer: bool) -> None:
            while time.monotonic() < stop:
                if writer:
                    value = 60 + len(outcomes) % 40
                    body = {"code": "8867-4", "value": value, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}
                    status, payload = _request(f"{base}/api/v1/patients/{patient}/vitals/", token, body)
                    outcomes.append((time.monotonic(), "write", status, payload))
                else:
                    status, payload = _request(f"{base}/api/v1/patients/{patient}/", token)
                    outcomes.append((time.monotonic(), "read", status, payload))

        threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        restarted_at = time.monotonic()
        private_postgres.restart()
        recovered_by = time.monotonic() + 2
        for thread in threads:
            thread.join()
    finally:
        stop_group(server)

    statuses = {status for _, _, status, _ in outcomes}
    assert statuses <= {200, 201, 503}, statuses  # refused while down (503 + Retry-After), never a 500 or a reset
    assert any(at < restarted_at for at, *_ in outcomes) and any(at > recovered_by for at, *_ in outcomes)
    assert all(status in (200, 201) for at, _, status, _ in outcomes if at > recovered_by + 1), "the pool recovered"
    created = [payload for _, kind, status, payload in outcomes if kind == "write" and status == 201]
    assert created

    check = manage(
        "shell", "-c",
        "from apps.clinical.models import Observation; from apps.audit.models import AuditEvent;"
        "import json; print(json.dumps({'written': Observation.objects.filter(effective_at='2026-01-01T08:00:00Z')"
        ".count(), 'audited': AuditEvent.objects.filter(action='create', resource_type='Observation').count()}))",
        env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    counts = json.loads(check.stdout.strip().splitlines()[-1])
    # Every 201 is stored with its audit record; every refused write left nothing behind.
    assert counts == {"written": len(created), "audited": len(created)}
    refused = sum(1 for *_, status, _ in outcomes if status == 503)
    print(f"\nPostgreSQL restart: {len(outcomes)} requests, {refused} refused with 503 while it restarted, "
          f"{len(created)} writes stored with {counts['audited']} audit records, 0 lost")  # fmt: skip
    verify = manage("audit", "verify", env=env)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    assert seed.returncode == 0


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_step_is_replaced_and_the_run_finishes(request, tmp_path):
    """acks_late + reject_on_worker_lost: the killed worker's step goes back to the queue, the next worker
    starts it over (attempts 2), and the run finishes; a step is never left running."""
    from apps.scaling.models import ScalingPolicy
    from apps.services.models import Service

    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    ScalingPolicy.objects.exclude(service=Service.objects.get(slug="embeddings")).update(enabled=False)
    env = {**os.environ, "DATABASE_URL": database_url()}

    def worker(title: str) -> subprocess.Popen:
        with log_in_report(request, tmp_path / f"{title}.log", f"the {title} worker").open("w") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", "default,inference", "-c",
                 "1", "-n", f"fault-{uuid.uuid4().hex[:6]}@localhost", "--without-gossip", "--without-mingle",
                 "--loglevel", "WARNING"],
                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    run = optimization_run_create(target="scaling", requested_by="fault test")  # forecasts: seconds of work
    optimization_run_dispatch(run)
    first = worker("first")
    step = run.steps.get()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            step.refresh_from_db()
            if step.status == "running":
                break
            time.sleep(0.05)
        assert step.status == "running", "the worker never started the step"
    finally:  # also when it never started: a stray worker would take the next tests' tasks
        stop_group(first, signal.SIGKILL)  # the worker and its pool child, mid-step

    second = worker("second")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                break
            time.sleep(0.5)
    finally:
        stop_group(second)
    step.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert step.status == "succeeded" and step.attempts == 2


def test_the_broker_down_leaves_the_api_serving_and_work_runs_when_it_returns(tmp_path):
    """A broker of the test's own (a Redis) stopped: clinical reads go on, /readyz says degraded, sending
    work fails with a clear message; back up, the worker reconnects and runs what is sent."""
    broker_port = free_port()
    broker = start_redis(broker_port)
    broker_url = f"redis://127.0.0.1:{broker_port}/0"
    env = embedded_env(tmp_path, CELERY_BROKER_URL=broker_url, CELERY_BROKER_CONNECTION_TIMEOUT="1")
    assert manage("migrate", "--noinput", env=env, timeout=300).returncode == 0
    assert manage("load_synthetic", "--patients", "2", "--days", "1", "--no-progress", env=env).returncode == 0
    port = free_port()
    manage("seed_demo", "--base-url", f"http://127.0.0.1:{port}", env=env)
    token = json.loads((tmp_path / "demo-credentials.json").read_text())["api_token"]
    processes = [
        subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", "4"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
        subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "controlplane", "worker", "-Q", "default,inference", "-c", "1",
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, token)
        broker.kill()
        broker.wait()
        patients = _request(f"{base}/api/v1/patients/", token)
        assert patients[0] == 200 and len(patients[1]["results"]) == 2
        status, ready = _request(f"{base}/readyz", token)
        assert status == 200 and ready["status"] == "degraded" and ready["checks"]["broker"]["status"] == "error"
        refused = manage("ping_worker", "--timeout", "5", env=env)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr

        broker = start_redis(broker_port)
        answered = manage("ping_worker", "--timeout", "60", env=env)
        assert answered.returncode == 0, answered.stdout + answered.stderr
    finally:
        for process in processes:
            stop_group(process)
        broker.kill()
        broker.wait()


@pytest.mark.django_db(transaction=True)
def test_a_full_disk_for_the_report_is_a_clear_error_and_the_run_is_kept():
    result = subprocess.run(
        [sys.executable, "manage.py", "optimize", "caching", "--inline", "--report", "/dev/full"],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "is stored, but its report could not be written to /dev/full: No space left on device" in result.stderr
    assert OptimizationRun.objects.filter(status="succeeded").exists()  # the run and its report are stored
