"""A run whose queue message was lost (a broker restart, a purge) stayed pending for a day before the checker
failed it, and the plan could not run meanwhile. Now the checker sends it again (to the real broker, read
back here) after REQUEUE_SECONDS while the workers are free, and fails it after a second wait."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from controlplane.celery import app
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]


def _sent(run_id: int) -> int:
    """How many execute_run messages for this run wait in the benchmarks queue (taken off it)."""
    count = 0
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        app.amqp.queues["benchmarks"](channel).declare()  # a fresh vhost has none until a message is sent
        while (message := channel.basic_get("benchmarks", no_ack=True)) is not None:
            if message.headers["task"] == "benchmarks.execute_run" and json.loads(message.body)[0] == [run_id]:
                count += 1
    return count


def test_a_run_never_taken_is_sent_again_then_failed(service, django_capture_on_commit_callbacks):
    plan = BenchmarkPlan.objects.create(name="lost", service=service, requests=REQUESTS)
    run = services.benchmark_run_create(plan=plan)
    _sent(run.pk)  # nothing of an earlier test's

    soon = timezone.now() + timedelta(seconds=60)
    assert services.benchmark_runs_fail_stuck(now=soon) == 0
    run.refresh_from_db()
    assert run.requeued_at is None  # a minute is no lost message

    later = timezone.now() + timedelta(seconds=services.REQUEUE_SECONDS + 60)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.benchmark_runs_fail_stuck(now=later) == 0
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.PENDING and run.requeued_at == later
    assert _sent(run.pk) == 1

    with django_capture_on_commit_callbacks(execute=True):  # the next pass: already sent, not sent twice
        assert services.benchmark_runs_fail_stuck(now=later + timedelta(seconds=60)) == 0
    assert _sent(run.pk) == 0

    second_wait = later + timedelta(seconds=services.REQUEUE_SECONDS + 60)
    assert services.benchmark_runs_fail_stuck(now=second_wait) == 1
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and "sent twice" in run.error
    assert services.benchmark_run_create(plan=plan).status == BenchmarkRun.Status.PENDING  # the plan runs again


def test_a_run_queued_behind_a_running_one_is_left_waiting(service, django_capture_on_commit_callbacks):
    """One worker busy with a long run: the others wait in the queue, their messages not lost."""
    busy = services.benchmark_run_create(plan=BenchmarkPlan.objects.create(name="long", service=service,
                                                                           requests=REQUESTS))  # fmt: skip
    BenchmarkRun.objects.filter(pk=busy.pk).update(
        status=BenchmarkRun.Status.RUNNING, heartbeat_at=timezone.now() + timedelta(hours=3),
        deadline=timezone.now() + timedelta(hours=4),
    )  # fmt: skip
    queued = services.benchmark_run_create(plan=BenchmarkPlan.objects.create(name="queued", service=service,
                                                                             requests=REQUESTS))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert services.benchmark_runs_fail_stuck(now=timezone.now() + timedelta(hours=2)) == 0
    queued.refresh_from_db()
    assert queued.status == BenchmarkRun.Status.PENDING and queued.requeued_at is None
    assert _sent(queued.pk) == 0
