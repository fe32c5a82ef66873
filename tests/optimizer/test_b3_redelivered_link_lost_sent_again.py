"""Review I section 1: a worker killed between optimization_run_next_send's mark (committed) and its publish
(SIGKILL at the end of a deploy's grace period while _retry_publish waits out a broker blip) left the run
running: the step's acks_late redelivery found the mark and sent nothing, so the run waited for the deadline
checker (2 h). A redelivery now sends it again while what follows is still pending, and never while the next
step runs (a duplicate delivered then would restart it) or on a first delivery.
Real PostgreSQL and Celery's own tracer with the chain the message carries; the send is recorded, not
published (Signature.apply_async replaced: the state a killed worker leaves cannot be made on a real worker)."""

from __future__ import annotations

import uuid

import pytest
from celery.app.trace import build_tracer
from celery.canvas import Signature
from django.utils import timezone

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep

pytestmark = pytest.mark.django_db(transaction=True)


def _deliver_marked_step(monkeypatch, *, name: str, redelivered: bool, next_status: str | None = None) -> list:
    """`name` succeeded and its mark committed, the publish never happened; its message delivered again."""
    run = services.optimization_run_create(target="all")
    steps = {step.name: step.pk for step in run.steps.all()}
    order = list(services.STEP_ORDER)
    for done in order[: order.index(name) + 1]:
        OptimizationStep.objects.filter(pk=steps[done]).update(
            status=OptimizationStep.Status.SUCCEEDED, finished_at=timezone.now(), next_sent_at=timezone.now()
        )
    following = order[order.index(name) + 1 :]
    if next_status and following:
        OptimizationStep.objects.filter(pk=steps[following[0]]).update(status=next_status)
    OptimizationRun.objects.filter(pk=run.pk).update(status=OptimizationRun.Status.RUNNING)
    sent = []
    monkeypatch.setattr(Signature, "apply_async", lambda self, *a, **k: sent.append((self.task, self.args)))
    links = [tasks.run_step.si(steps[n]) for n in following] + [tasks.finalize_run.si(run.pk)]
    trace = build_tracer(tasks.run_step.name, tasks.run_step, eager=False, app=tasks.run_step.app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "args": [steps[name]], "kwargs": {}, "chain": [dict(x) for x in reversed(links)],
               "delivery_info": {"exchange": "", "routing_key": "inference", "redelivered": redelivered}}  # fmt: skip
    retval, info, *_ = trace(task_id, [steps[name]], {}, request)
    assert (retval, info) == (OptimizationStep.Status.SUCCEEDED, None)
    return [(task, tuple(args)) for task, args in sent], steps, run


def test_redelivery_after_mark_without_send_sends_the_next_step(monkeypatch):
    sent, steps, run = _deliver_marked_step(monkeypatch, name="database", redelivered=True)
    assert sent == [(tasks.run_step.name, (steps["caching"],))]  # was []: caching pending until the deadline
    assert run.steps.get(name="caching").status == OptimizationStep.Status.PENDING


def test_redelivery_of_the_last_step_sends_the_finalizer(monkeypatch):
    sent, _, run = _deliver_marked_step(monkeypatch, name="scaling", redelivered=True)
    assert sent == [(tasks.finalize_run.name, (run.pk,))]


def test_not_sent_again_once_the_next_step_runs(monkeypatch):
    sent, *_ = _deliver_marked_step(
        monkeypatch, name="database", redelivered=True, next_status=OptimizationStep.Status.RUNNING
    )
    assert sent == []  # a duplicate delivered now would restart caching


def test_a_first_delivery_with_the_mark_set_sends_nothing(monkeypatch):
    sent, *_ = _deliver_marked_step(monkeypatch, name="database", redelivered=False)
    assert sent == []
