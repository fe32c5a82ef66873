"""The stuck-run checker (beat, every 5 minutes) sent by two beats (an evicted pod terminating beside its
replacement), the two sends taken at once by two workers (threads here, each with its own PostgreSQL session):
a run is failed once, and a lost run is sent again once. Idempotent by design (conditional updates); these
hold it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services, tasks
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_create
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def _run(**fields) -> BenchmarkRun:
    service = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:8000")
    plan = BenchmarkPlan.objects.create(
        name="triage", service=service, duration_seconds=60,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(**fields)
    return run


def test_two_checkers_at_once_fail_a_silent_run_once():
    long_ago = timezone.now() - timedelta(hours=1)
    run = _run(status=BenchmarkRun.Status.RUNNING, started_at=long_ago, heartbeat_at=long_ago)
    results = at_once(tasks.fail_stuck_runs)
    assert sorted(results) == [0, 1]
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "stopped reporting" in run.error


def test_two_checkers_at_once_send_a_lost_run_again_once(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(tasks.execute_run, "delay", lambda run_id: sent.append(run_id))
    run = _run()
    BenchmarkRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=services.REQUEUE_SECONDS + 60)
    )
    at_once(tasks.fail_stuck_runs)
    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.PENDING and run.requeued_at is not None
