"""A run's end is decided once: the checker does not fail as overdue a run whose worker is alive and
recording it, and the worker's end does not overwrite one the checker already decided."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    service = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    plan = BenchmarkPlan.objects.create(name="day", service=service, requests=REQUESTS, duration_seconds=86_400)
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(status=BenchmarkRun.Status.RUNNING, started_at=timezone.now())
    run.refresh_from_db()
    return run


def test_a_run_recording_past_its_deadline_is_not_failed_as_overdue(run):
    """A day-long run reads its samples for minutes after its load stopped at the deadline, its heartbeat
    written as it reads: the checker failed it as overdue while it finished."""
    now = timezone.now()
    BenchmarkRun.objects.filter(pk=run.pk).update(
        deadline=now - timedelta(seconds=services.DEADLINE_MARGIN_SECONDS + 60),
        heartbeat_at=now,
        progress_message="recording",
    )
    assert services.benchmark_runs_fail_stuck(now=now) == 0
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.RUNNING

    silent = now + timedelta(seconds=services.HEARTBEAT_STALE_SECONDS + 1)  # its worker died while recording
    assert services.benchmark_runs_fail_stuck(now=silent) == 1
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "deadline" in run.error


def test_the_workers_end_does_not_overwrite_the_checkers(run):
    """The checker failed the run (its heartbeat went stale); its worker, slow rather than dead, then
    finished and overwrote the failure with a success: two ends, each announced."""
    later = timezone.now() + timedelta(seconds=services.HEARTBEAT_STALE_SECONDS + 1)
    BenchmarkRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    assert services.benchmark_runs_fail_stuck(now=later) == 1

    ended = services._finish(run, status=BenchmarkRun.Status.SUCCEEDED)
    assert ended.status == BenchmarkRun.Status.FAILED and "stopped reporting" in ended.error
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and run.finished_at == later


def test_a_run_deleted_with_its_plan_ends_without_an_error(run):
    run.plan.delete()
    assert services._finish(run, status=BenchmarkRun.Status.SUCCEEDED).pk == run.pk
    assert not BenchmarkRun.objects.filter(pk=run.pk).exists()
