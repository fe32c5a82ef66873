"""A benchmark worker SIGKILLed in the middle of a run, with a real Celery worker on the real broker (a
queue of the test's own, so no other worker takes the run)."""

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.tasks import execute_run
from apps.services.services import service_ensure
from controlplane.celery import app
from tests.helpers import REPO_ROOT, database_url, log_in_report, stop_group, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue():
    name = f"benchmarks-test-{uuid.uuid4().hex[:8]}"
    yield name
    with app.connection_for_write() as broker:  # a message left by a redelivery must not outlive the test
        broker.default_channel.queue_delete(name)


def test_a_killed_worker_stops_its_load_and_its_run_is_failed(sleepy, queue, request, tmp_path):
    """The run's Locust lived on in its own session after its worker died, sending load with no one to
    watch, cancel or record it (up to the plan's whole duration); the run stayed RUNNING until its deadline
    had passed by 5 minutes (a 24 h run: a day) and its token stayed valid. Now Locust quits within seconds
    of losing its worker and the checker fails a run whose worker stopped reporting."""
    service, _ = service_ensure(slug="sleepy", name="Sleepy service", base_url=sleepy.url)
    plan = BenchmarkPlan.objects.create(
        name="sleepy long", service=service, users=2, spawn_rate=2, duration_seconds=120,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    env = {**os.environ, "DATABASE_URL": database_url()}
    log = log_in_report(request, tmp_path / "worker.log", "worker")  # its tail in the report of a failure
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", queue, "-c", "1",
             "-n", f"{queue}@localhost", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    locusts: list[psutil.Process] = []
    try:
        execute_run.apply_async(args=[run.pk], queue=queue)
        wait_for(lambda: sleepy.served > 20, 90, "the run's load to reach the target")
        # Locust runs in a session of its own (the worker's group kill below does not reach it), still the
        # pool process's child: found now, while it is.
        locusts = [child for child in psutil.Process(worker.pid).children(recursive=True) if _is_locust(child)]
    finally:
        stop_group(worker, signal.SIGKILL)  # the worker and its pool process, mid-run
    assert locusts, "no Locust process under the worker"

    # Waited for, not slept on (it was a fixed 5 s, then 3 s of watching the load stand still): Locust notices
    # its parent is gone within a second and quits as a cancellation does, which on a loaded machine can take
    # longer. Before the fix it went on for the plan's 120 s: the minute waited for still tells the two apart.
    wait_for(lambda: not any(_alive(locust) for locust in locusts), 60, "Locust to quit after its worker died")

    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.RUNNING  # nothing has noticed yet
    later = timezone.now() + timedelta(seconds=services.HEARTBEAT_STALE_SECONDS + 1)
    assert run.deadline > later - timedelta(seconds=services.DEADLINE_MARGIN_SECONDS)  # its deadline is far off
    assert services.benchmark_runs_fail_stuck(now=later) == 1
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "stopped reporting" in run.error
    tokens = ApiClient.objects.filter(name__startswith=f"benchmark-run-{run.pk}-")
    assert tokens.exists() and all(token.revoked_at for token in tokens)


def _is_locust(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return any("locust" in Path(part).name for part in process.cmdline()[:2])
    return False


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie: a quit Locust waits, unreaped, for whoever adopted it."""
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False
