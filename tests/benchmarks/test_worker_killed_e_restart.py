"""A benchmark worker SIGKILLed mid-run (the OOM killer, kill -9): its run stayed RUNNING until the checker's
next round (up to 5 minutes; restarting the worker did not trigger it), though README says such a run is
failed at once, and the run's folder (/tmp/bench-*: patients.json with the patient ids drawn, every sample,
Locust's log) was left for good. Run folders now live under VAR_DIR/benchmark-runs, and a worker starting
fails this host's runs whose worker is gone and removes the folders their dead processes left."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from apps.benchmarks import runner, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.tasks import execute_run
from apps.services.services import service_ensure
from controlplane.celery import app
from tests.helpers import REPO_ROOT, database_url, log_in_report, stop_group, wait_for


@pytest.fixture
def queue():
    name = f"benchmarks-test-{uuid.uuid4().hex[:8]}"
    yield name
    with app.connection_for_write() as broker:
        broker.default_channel.queue_delete(name)


def _worker(queue: str, log: Path) -> subprocess.Popen:
    """A prefork worker of one slot on `queue`, its output in `log` (the test puts it in its report if it fails)."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", queue, "-c", "1",
             "-n", f"{queue}-{uuid.uuid4().hex[:4]}@localhost", "--without-gossip", "--without-mingle",
             "--loglevel", "WARNING"],
            cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_restarted_worker_fails_the_killed_run_at_once_and_removes_its_files(sleepy, queue, request, tmp_path):
    service, _ = service_ensure(slug="sleepy", name="Sleepy service", base_url=sleepy.url)
    plan = BenchmarkPlan.objects.create(
        name="sleepy long", service=service, users=2, spawn_rate=2, duration_seconds=120,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    before = set(runner.runs_folder().iterdir())
    run = services.benchmark_run_create(plan=plan)
    worker = _worker(queue, log_in_report(request, tmp_path / "worker.log", "the killed worker"))
    try:
        execute_run.apply_async(args=[run.pk], queue=queue)
        wait_for(lambda: sleepy.served > 20, 90, "the run's load to reach the target")
    finally:
        stop_group(worker, signal.SIGKILL)  # the worker and its pool process, mid-run
    left = set(runner.runs_folder().iterdir()) - before
    assert len(left) == 1 and (next(iter(left)) / "patients.json").exists()  # under VAR_DIR, not /tmp
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.RUNNING

    restarted = _worker(queue, log_in_report(request, tmp_path / "restarted.log", "the restarted worker"))
    try:
        wait_for(lambda: BenchmarkRun.objects.get(pk=run.pk).status == BenchmarkRun.Status.FAILED, 60,
                 "the restarted worker to fail the run")  # fmt: skip
        wait_for(lambda: not any(folder.exists() for folder in left), 30, "the run's folder to be removed")
    finally:
        stop_group(restarted)
    run.refresh_from_db()
    assert "is gone" in run.error


def test_the_sweep_keeps_live_processes_and_other_hosts_folders(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    base = runner.runs_folder()
    now = int(time.time())
    mine = base / f"{runner._folder_prefix()}abc"  # this process's own run: alive
    dead_pid = 2**31 - 1  # above any pid_max: no process
    dead = base / f"bench-{runner._host_tag()}-{dead_pid}-{now}-xyz"
    reused = base / f"bench-{runner._host_tag()}-{os.getpid()}-{now - 10 * 365 * 86400}-old"  # pid reused since
    elsewhere = base / f"bench-another.host-{dead_pid}-{now}-xyz"
    for folder in (mine, dead, reused, elsewhere):
        folder.mkdir()
        (folder / "patients.json").write_text("[1, 2]")
    assert sorted(runner.run_folders_sweep()) == sorted([dead, reused])
    assert mine.exists() and elsewhere.exists() and not dead.exists() and not reused.exists()


def test_the_sweep_takes_a_zombie_for_gone(tmp_path, settings):
    """A worker killed with its pool leaves the pool process a zombie until init reaps it: its folder was kept (it
    read as alive) while the run was failed as gone, until the checker's next round (the test above failed in CI)."""
    import psutil

    settings.VAR_DIR = tmp_path
    child = subprocess.Popen(["true"])  # exits at once; not waited for, so a zombie
    try:
        wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 10, "the child to be a zombie")
        folder = runner.runs_folder() / f"bench-{runner._host_tag()}-{child.pid}-{int(time.time())}-zzz"
        folder.mkdir()
        assert runner.run_folders_sweep() == [folder] and not folder.exists()
    finally:
        child.wait()
