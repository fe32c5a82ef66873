"""An optimization run is a chain: each step's task, once done, sends the next step (or the finalizer). Sent by
Celery after the task returned, a send the broker refused (RabbitMQ's vhost down: amqp's NotAllowed) was an
internal error of a step that had succeeded; the rest of the run was never sent and it stayed running until the
deadline checker failed it, hours later, as "No worker finished it before the deadline". The steps not sent are
now failed saying the broker refused them, and the run is finished at once (the finalizer's work needs no broker).
Real RabbitMQ: this environment's own vhost is deleted for the send and created again afterwards. The step runs
in this process under Celery's own tracer, with the chain its message carries, as a worker runs it (no worker can
consume from a vhost that is gone); the step itself is already done (a redelivered step returns at once), so the
trace goes straight to the send."""

from __future__ import annotations

import uuid

import pytest
from celery.app.trace import build_tracer
from django.utils import timezone

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep

pytestmark = pytest.mark.django_db(transaction=True)


def _step_done_then_send(run: OptimizationRun, done: str, links: list) -> tuple[object, object]:
    step = run.steps.get(name=done)
    OptimizationStep.objects.filter(pk=step.pk).update(status=OptimizationStep.Status.SUCCEEDED,
                                                       finished_at=timezone.now())  # fmt: skip
    trace = build_tracer(tasks.run_step.name, tasks.run_step, eager=False, app=tasks.run_step.app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "args": [step.pk], "kwargs": {}, "chain": [dict(link) for link in reversed(links)],
               "delivery_info": {"exchange": "", "routing_key": "inference"}}  # fmt: skip
    retval, info, *_ = trace(task_id, [step.pk], {}, request)
    return retval, info


def test_a_refused_next_step_fails_the_steps_not_sent_and_finishes_the_run(vhost_deleted):
    run = services.optimization_run_create(target="all")
    steps = {step.name: step.pk for step in run.steps.all()}
    links = [tasks.run_step.si(steps[name]) for name in ("caching", "model", "scaling")]
    retval, info = _step_done_then_send(run, "database", [*links, tasks.finalize_run.si(run.pk)])
    assert (retval, info) == (OptimizationStep.Status.SUCCEEDED, None)  # was an internal error of the step
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED and run.finished_at is not None  # was running, for hours
    assert run.error == "step caching failed; step model failed; step scaling failed"
    for step in run.steps.exclude(name="database"):
        assert step.status == OptimizationStep.Status.FAILED
        assert step.error.startswith("Never sent: the broker did not take it (NotAllowed"), step.error
    assert run.steps.get(name="database").status == OptimizationStep.Status.SUCCEEDED


def test_a_refused_finalizer_is_done_here(vhost_deleted):
    run = services.optimization_run_create(target="caching")
    retval, info = _step_done_then_send(run, "caching", [tasks.finalize_run.si(run.pk)])
    assert (retval, info) == (OptimizationStep.Status.SUCCEEDED, None)
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.SUCCEEDED and run.finished_at is not None  # was left pending
    assert run.report_html
