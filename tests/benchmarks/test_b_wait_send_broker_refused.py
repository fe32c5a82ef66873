"""A run that waits for another run on its target is sent again 30 s later: by scheduled_run (the nightly run,
executed on the worker that took the schedule) and by execute_run's retry. A broker that refused that send
(RabbitMQ's vhost down: amqp's NotAllowed) ended scheduled_run in a traceback and execute_run's retry in a
rejection (the message dropped), the run left pending with no word of why; one the checker had sent again
before was then failed as "sent twice ... while the workers were free". The run is now left pending for the
checker with the refusal on it, and the checker sends it once the target is free and the broker takes it.
Real RabbitMQ: this environment's own vhost is deleted for the send and created again afterwards. execute_run
runs in this process under Celery's own tracer, as a worker runs it (no worker can consume from a vhost that
is gone)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from celery.app.trace import build_tracer
from django.utils import timezone

from apps.benchmarks import services, tasks
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_create
from tests.benchmarks.support import REQUESTS, running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy_target() -> tuple[BenchmarkRun, BenchmarkPlan]:
    """A run loading the target (its worker on another host, alive as far as this host can tell), and a second
    plan of the same target whose runs wait for it."""
    service = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:9")
    loading = running(
        BenchmarkPlan.objects.create(name="loading", service=service, duration_seconds=60, requests=REQUESTS)
    )
    waiting = BenchmarkPlan.objects.create(name="waiting", service=service, duration_seconds=60, requests=REQUESTS)
    return loading, waiting


def _checker_sends_it_once_the_target_is_free(run: BenchmarkRun, loading: BenchmarkRun, vhost_deleted) -> None:
    vhost_deleted()  # the vhost back
    BenchmarkRun.objects.filter(pk=loading.pk).update(status=BenchmarkRun.Status.SUCCEEDED, finished_at=timezone.now())
    BenchmarkRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=services.REQUEUE_SECONDS + 60)
    )
    assert tasks.fail_stuck_runs() == 0
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.PENDING and run.requeued_at is not None  # sent again, not failed


def test_a_refused_send_of_a_scheduled_run_leaves_it_to_the_checker(busy_target, vhost_deleted):
    loading, plan = busy_target
    run_id = tasks.scheduled_run(plan.pk)  # raised NotAllowed before
    run = BenchmarkRun.objects.get(plan=plan)
    assert run_id == run.pk
    assert run.status == BenchmarkRun.Status.PENDING and run.requeued_at is None
    assert run.progress_message.startswith(f"waiting for run #{loading.pk} on the same target; its next try was not")
    assert "the broker did not take it (NotAllowed" in run.progress_message
    _checker_sends_it_once_the_target_is_free(run, loading, vhost_deleted)


def test_a_refused_retry_leaves_the_run_to_the_checker_not_failed_as_sent_twice(busy_target, vhost_deleted):
    loading, plan = busy_target
    run = services.benchmark_run_create(plan=plan)
    sent_again_at = timezone.now() - timedelta(seconds=60)  # the checker's send that this worker took
    BenchmarkRun.objects.filter(pk=run.pk).update(requeued_at=sent_again_at)
    trace = build_tracer(tasks.execute_run.name, tasks.execute_run, eager=False, app=tasks.execute_run.app)
    request = {"id": str(uuid.uuid4()), "args": [run.pk], "kwargs": {}, "retries": 0, "is_eager": False,
               "delivery_info": {"exchange": "", "routing_key": "benchmarks"}}  # fmt: skip
    retval, *_ = trace(request["id"], [run.pk], {}, request)
    assert retval == BenchmarkRun.Status.PENDING  # was a rejection: the retry's send refused, the message dropped
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.PENDING
    assert run.requeued_at is None  # was kept: the checker failed it as "sent twice ... while the workers were free"
    assert "its next try was not sent" in run.progress_message and "NotAllowed" in run.progress_message
    _checker_sends_it_once_the_target_is_free(run, loading, vhost_deleted)
