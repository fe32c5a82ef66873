"""Review G: a finished step delivered again (its worker lost after it sent its chain's next link, before the ack)
sent that link again; when the broker refused the duplicate, optimization_run_next_send failed the run although
its next step had been sent and was measuring (run failed, caching's results "dropped"). The link is now sent once
per step (next_sent_at, set by a conditional UPDATE before the send), and a refusal is fatal only while the next
step is still pending.
Real RabbitMQ (this environment's vhost deleted for the redelivery's send), real PostgreSQL, Celery's own tracer
with the chain the message carries; caching's first delivery measures in a thread of this process (its measure
slowed by 3 s, the only stand-in: no worker can consume from a vhost that is gone)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from celery.app.trace import build_tracer
from django.db import connection
from django.utils import timezone

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.optimizer.steps import STEPS

pytestmark = pytest.mark.django_db(transaction=True)


def _redeliver_finished_step_while_next_measures(monkeypatch, *, link_marked_sent: bool) -> OptimizationRun:
    run = services.optimization_run_create(target="all")
    steps = {step.name: step.pk for step in run.steps.all()}
    marked = {"next_sent_at": timezone.now()} if link_marked_sent else {}
    OptimizationStep.objects.filter(pk=steps["database"]).update(
        status=OptimizationStep.Status.SUCCEEDED, finished_at=timezone.now(), **marked
    )
    real = STEPS["caching"].measure
    monkeypatch.setattr(STEPS["caching"], "measure", lambda goals, progress: (time.sleep(3), real(goals, progress))[1])

    def measure_caching() -> None:
        try:
            services.optimization_step_execute(step_id=steps["caching"])
        finally:
            connection.close()

    measuring = threading.Thread(target=measure_caching)
    measuring.start()
    deadline = time.monotonic() + 60
    while OptimizationStep.objects.get(pk=steps["caching"]).status != OptimizationStep.Status.RUNNING:
        assert time.monotonic() < deadline, "caching never started"
        time.sleep(0.05)

    links = [tasks.run_step.si(steps[n]) for n in ("caching", "model", "scaling")] + [tasks.finalize_run.si(run.pk)]
    trace = build_tracer(tasks.run_step.name, tasks.run_step, eager=False, app=tasks.run_step.app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "args": [steps["database"]], "kwargs": {}, "chain": [dict(x) for x in reversed(links)],
               "delivery_info": {"exchange": "", "routing_key": "inference", "redelivered": True}}  # fmt: skip
    retval, info, *_ = trace(task_id, [steps["database"]], {}, request)
    assert (retval, info) == (OptimizationStep.Status.SUCCEEDED, None)
    measuring.join(timeout=120)
    assert not measuring.is_alive()
    run.refresh_from_db()
    return run


def test_a_redelivered_step_does_not_send_its_link_again(vhost_deleted, monkeypatch):
    run = _redeliver_finished_step_while_next_measures(monkeypatch, link_marked_sent=True)
    caching = run.steps.get(name="caching")
    assert caching.status == OptimizationStep.Status.SUCCEEDED, caching.error  # was failed, its results dropped
    assert run.status != OptimizationRun.Status.FAILED, run.error
    assert not run.steps.filter(status=OptimizationStep.Status.FAILED).exists()  # were "Never sent"


def test_a_refused_send_leaves_the_run_alone_once_its_next_step_runs(vhost_deleted, monkeypatch):
    # The mark not set (a step finished before the mark existed): the send is tried, refused, and not fatal.
    run = _redeliver_finished_step_while_next_measures(monkeypatch, link_marked_sent=False)
    assert run.steps.get(name="caching").status == OptimizationStep.Status.SUCCEEDED
    assert run.status != OptimizationRun.Status.FAILED, run.error
    assert run.steps.get(name="model").status == OptimizationStep.Status.PENDING
