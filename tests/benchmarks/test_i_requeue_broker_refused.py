"""The stuck-run checker (beat, every 5 minutes) sends again a run pending REQUEUE_SECONDS: its message was lost.
Sent while RabbitMQ refused the connection (its vhost down), amqp's NotAllowed came out of the send and ended
the checker's round: the other stuck runs were not failed, and the run marked requeued, though never sent, was
failed 10 min later as "sent twice ... while the workers were free". A refused send now leaves the run unmarked,
to be sent again by the next round, and the round goes on.
Real RabbitMQ: this environment's own vhost is deleted for the send and created again afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services, tasks
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_create

pytestmark = pytest.mark.django_db(transaction=True)  # the send runs on the checker's commit


def _pending_run(age: timedelta) -> BenchmarkRun:
    service = service_create(name=f"Triage {age}", slug=f"triage-{int(age.total_seconds())}",
                             base_url="http://127.0.0.1:9")  # fmt: skip
    plan = BenchmarkPlan.objects.create(
        name=f"triage {age}", service=service, duration_seconds=60,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - age)
    return run


def test_a_refused_requeue_leaves_the_run_to_the_next_round_and_the_round_goes_on(vhost_deleted):
    lost = _pending_run(timedelta(seconds=services.REQUEUE_SECONDS + 60))
    never_taken = _pending_run(timedelta(seconds=services.QUEUE_WAIT_SECONDS + 60))

    assert tasks.fail_stuck_runs() == 1  # raised NotAllowed before
    never_taken.refresh_from_db()
    assert never_taken.status == BenchmarkRun.Status.FAILED and "No worker took it within" in never_taken.error
    lost.refresh_from_db()
    assert lost.status == BenchmarkRun.Status.PENDING
    assert lost.requeued_at is None  # not sent: the next round sends it, never failed as "sent twice"


def test_the_next_round_sends_it_once_the_broker_takes_it(vhost_deleted):
    lost = _pending_run(timedelta(seconds=services.REQUEUE_SECONDS + 60))
    assert tasks.fail_stuck_runs() == 0
    assert BenchmarkRun.objects.get(pk=lost.pk).requeued_at is None
    vhost_deleted()  # the vhost back
    assert tasks.fail_stuck_runs() == 0
    lost.refresh_from_db()
    assert lost.status == BenchmarkRun.Status.PENDING and lost.requeued_at is not None
