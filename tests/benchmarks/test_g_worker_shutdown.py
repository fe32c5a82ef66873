"""A worker's shutdown stops its running benchmark runs, their samples so far recorded (a warm shutdown
waited out the whole run); a run whose worker process is gone (a Ctrl-C, a kill) is failed at once instead
of blocking its plan until the checker found its heartbeat stale, minutes later."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from celery.signals import worker_shutting_down
from django.db import connections
from django.utils import timezone

from apps.benchmarks import runner, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS
from tests.helpers import wait_for


def _plan(base_url: str, **fields) -> BenchmarkPlan:
    service, _ = service_ensure(slug="sleepy", name="Sleepy service", base_url=base_url)
    return BenchmarkPlan.objects.create(name="long load", service=service, users=2, spawn_rate=2,
                                        duration_seconds=3600, requests=REQUESTS, **fields)  # fmt: skip


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_warm_shutdown_stops_the_run_and_keeps_its_samples(sleepy):
    run = services.benchmark_run_create(plan=_plan(sleepy.url))
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            outcome["run"] = services.benchmark_run_execute(run_id=run.pk)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    wait_for(lambda: sleepy.served > 10, 120, "the run's load to reach the target")
    worker_shutting_down.send(sender="celery@test", sig="SIGTERM", how="Warm", exitcode=0)
    thread.join(timeout=180)  # the run's own length is an hour
    assert not thread.is_alive(), "the run went on after its worker began shutting down"
    assert "error" not in outcome, repr(outcome.get("error"))
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.CANCELLED
    assert run.error == services.WORKER_SHUTDOWN
    assert run.summary["requests"] > 0 and run.timeline and run.histogram


@pytest.mark.django_db
def test_only_this_workers_runs_are_stopped_for_its_shutdown():
    plan = _plan("http://127.0.0.1:9")
    mine = BenchmarkRun.objects.create(plan=plan, status="running", worker_host=socket.gethostname(),
                                       worker_pid=os.getpid())  # fmt: skip
    other_plan = BenchmarkPlan.objects.create(name="other", service=plan.service, requests=REQUESTS)
    elsewhere = BenchmarkRun.objects.create(plan=other_plan, status="running", worker_host="another-pod",
                                            worker_pid=os.getpid())  # fmt: skip
    assert services.benchmark_runs_stop_for_shutdown() == [mine.pk]
    mine.refresh_from_db()
    elsewhere.refresh_from_db()
    assert mine.cancel_requested and mine.stop_reason == services.WORKER_SHUTDOWN
    assert not elsewhere.cancel_requested


@pytest.mark.django_db
def test_a_run_whose_worker_process_is_gone_no_longer_blocks_its_plan():
    plan = _plan("http://127.0.0.1:9")
    dead = BenchmarkRun.objects.create(plan=plan, status="running", started_at=timezone.now(),
                                       heartbeat_at=timezone.now(), worker_host=socket.gethostname(),
                                       worker_pid=_gone_pid())  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    assert run.status == BenchmarkRun.Status.PENDING
    dead.refresh_from_db()
    assert dead.status == BenchmarkRun.Status.FAILED and "is gone" in dead.error


@pytest.mark.django_db
def test_a_run_whose_worker_lives_or_is_elsewhere_still_blocks_its_plan():
    plan = _plan("http://127.0.0.1:9")
    live = BenchmarkRun.objects.create(plan=plan, status="running", started_at=timezone.now(),
                                       worker_host=socket.gethostname(), worker_pid=os.getpid())  # fmt: skip
    with pytest.raises(services.RunInProgress):
        services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=live.pk).update(worker_host="another-pod", worker_pid=_gone_pid())
    with pytest.raises(services.RunInProgress):  # another host's processes are not known here: its heartbeat tells
        services.benchmark_run_create(plan=plan)


@pytest.mark.django_db
def test_the_checker_fails_a_run_whose_worker_is_gone_at_once():
    plan = _plan("http://127.0.0.1:9")
    dead = BenchmarkRun.objects.create(plan=plan, status="running", started_at=timezone.now(),
                                       heartbeat_at=timezone.now(), deadline=timezone.now() + timedelta(hours=1),
                                       worker_host=socket.gethostname(), worker_pid=_gone_pid())  # fmt: skip
    assert services.benchmark_runs_fail_stuck() == 1
    dead.refresh_from_db()
    assert dead.status == BenchmarkRun.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_ctrl_c_mid_run_fails_the_run_instead_of_leaving_it_running(monkeypatch):
    plan = _plan("http://127.0.0.1:9")
    monkeypatch.setattr(services, "_target_resolves", lambda base_url: None)

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_locust", interrupted)
    run = services.benchmark_run_create(plan=plan)
    with pytest.raises(KeyboardInterrupt):
        services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "Interrupted" in run.error
    services.benchmark_run_create(plan=plan)  # the plan runs again at once


@pytest.mark.slow
def test_a_stop_early_in_the_load_keeps_what_was_measured(sleepy, tmp_path):
    """Locust's own SIGTERM handler comes only after a shape's test: a stop before then killed Locust at once,
    every sample since its last flush (all of them, in the load's first second) lost."""
    outcome = runner.run_locust(base_url=sleepy.url, requests=REQUESTS, token="t", patients=[], stages=[[60, 2, 2]],
                                stress_gate=None, rate_per_user=None, on_tick=lambda *_: None, workdir=tmp_path,
                                should_stop=lambda: sleepy.served > 10)  # fmt: skip
    assert outcome.status == "cancelled"
    assert outcome.totals.requests > 0 and outcome.samples
