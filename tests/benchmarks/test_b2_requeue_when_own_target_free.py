"""Review G: the stuck-run checker sent a waiting run again only while no run anywhere was running, though a run
whose next try the broker refused is "left to the checker, which sends it once the target is free" (fdbaad7): a
day-long run on another target kept it pending until it was failed at 24 h as a lost message. A run pending
REQUEUE_SECONDS is now sent again once its own target is free, whatever runs elsewhere; not while its own target
is busy, and not failed as lost while another target's run holds a worker.
Real RabbitMQ and PostgreSQL: the checker's send is read back from the benchmarks queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from amqp.exceptions import NotAllowed
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_create
from controlplane.celery import app
from tests.benchmarks.support import REQUESTS, running

pytestmark = pytest.mark.django_db(transaction=True)


def _sent_again(run_ids: set[int]) -> list[int]:
    """The runs of `run_ids` whose execute_run waits in the benchmarks queue (the queue drained)."""
    found = []
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        app.amqp.queues["benchmarks"](channel).declare()
        while (message := channel.basic_get("benchmarks", no_ack=True)) is not None:
            if message.headers.get("task") == "benchmarks.execute_run":
                found += [run_id for run_id in run_ids if message.headers.get("argsrepr") == f"({run_id},)"]
    return found


def test_a_waiting_run_is_sent_again_once_its_own_target_is_free():
    here = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:9")
    elsewhere = service_create(name="Imaging", slug="imaging", base_url="http://127.0.0.1:10")
    plan = BenchmarkPlan.objects.create(name="loading", service=here, duration_seconds=60, requests=REQUESTS)
    waiting_plan = BenchmarkPlan.objects.create(name="waits", service=here, duration_seconds=60, requests=REQUESTS)
    other_plan = BenchmarkPlan.objects.create(name="day long", service=elsewhere, duration_seconds=60,
                                              requests=REQUESTS)  # fmt: skip
    busy, _other = running(plan), running(other_plan)  # another target's day-long run holds a worker
    waiting = services.benchmark_run_create(plan=waiting_plan)
    created = timezone.now() - timedelta(seconds=services.REQUEUE_SECONDS + 60)
    BenchmarkRun.objects.filter(pk=waiting.pk).update(created_at=created)
    services.benchmark_run_wait_unsent(run_id=waiting.pk, busy=busy, exc=NotAllowed("vhost down"))
    _sent_again({waiting.pk})  # nothing of this test's left over from another

    services.benchmark_runs_fail_stuck()  # its own target still busy: not sent
    assert _sent_again({waiting.pk}) == []
    waiting.refresh_from_db()
    assert (waiting.status, waiting.requeued_at) == (BenchmarkRun.Status.PENDING, None)

    BenchmarkRun.objects.filter(pk=busy.pk).update(status=BenchmarkRun.Status.SUCCEEDED, finished_at=timezone.now())
    services.benchmark_runs_fail_stuck()
    assert _sent_again({waiting.pk}) == [waiting.pk]  # was [] while the other target's run went on
    waiting.refresh_from_db()
    assert waiting.status == BenchmarkRun.Status.PENDING and waiting.requeued_at is not None

    # Not taken (the other run holds a worker) for longer than REQUEUE_SECONDS: not failed as lost meanwhile.
    services.benchmark_runs_fail_stuck(now=timezone.now() + timedelta(seconds=services.REQUEUE_SECONDS + 60))
    waiting.refresh_from_db()
    assert waiting.status == BenchmarkRun.Status.PENDING, waiting.error
