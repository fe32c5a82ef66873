"""A run's live progress (the dashboard's list and feed, `bench run --wait`) ends with the run, however it
ends: by the stuck-run checker, or cancelled while it waited."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    return BenchmarkPlan.objects.create(
        name="p", service=service, requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}]
    )


def test_a_run_failed_by_the_checker_no_longer_says_it_is_recording(plan):
    """Its worker died while recording: failed, the run still read "recording" in every list."""
    run = services.benchmark_run_create(plan=plan)
    now = timezone.now()
    BenchmarkRun.objects.filter(pk=run.pk).update(
        status=BenchmarkRun.Status.RUNNING, started_at=now, heartbeat_at=now, progress=1.0,
        progress_message="recording",
    )  # fmt: skip
    later = now + timedelta(seconds=services.HEARTBEAT_STALE_SECONDS + 1)
    assert services.benchmark_runs_fail_stuck(now=later) == 1
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and run.progress_message == ""


def test_a_run_cancelled_while_it_waited_for_its_target_no_longer_says_it_waits(plan):
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(progress_message="waiting for run #1 on the same target")
    run = services.benchmark_run_cancel(run=run)
    assert run.status == BenchmarkRun.Status.CANCELLED and run.progress_message == ""
