"""Review G: an optimizer step delivered again while its first attempt still ran (acks late: the first worker's
broker connection broke mid-step, the message went to a second worker) started attempt 2 beside attempt 1: both
measured (and with --apply both applied), progress went backwards, and the two results raced. Each attempt now
owns the step (attempt_token) and keeps a heartbeat; a delivery finding a live owner waits for it and never
measures, one finding it silent takes the step over, and an attempt taken over drops its results.
Real PostgreSQL and Celery's own tracer with the chain the message carries, each delivery in a thread of this
process (two deliveries of one message at once cannot be made on real workers at will); the next link's send is
recorded, not published (Signature.apply_async replaced, as in test_b3_*). The steps' measure is replaced by one
that blocks on an event: the stand-in for minutes of measuring."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from celery.app.trace import build_tracer
from celery.canvas import Signature
from django.db.models.functions import Now
from django.utils import timezone

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.optimizer.steps import STEPS
from apps.optimizer.types import Draft, StepResult
from tests.helpers import in_thread, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 120  # seconds any thread of a test may wait for another


def _draft(subject: str) -> Draft:
    return Draft(kind="race", subject=subject, title=subject, reason="r", change={}, evidence={}, actionable=False)


def _deliver(step_id: int, links: list, *, redelivered: bool) -> str:
    """One delivery of run_step's message for `step_id`, carrying `links` as its chain, through Celery's tracer."""
    trace = build_tracer(tasks.run_step.name, tasks.run_step, eager=False, app=tasks.run_step.app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "args": [step_id], "kwargs": {}, "chain": [dict(x) for x in reversed(links)],
               "delivery_info": {"exchange": "", "routing_key": "inference", "redelivered": redelivered}}  # fmt: skip
    retval, info, *_ = trace(task_id, [step_id], {}, request)
    assert info is None, info
    return retval


def _measuring(step_id: int) -> None:
    """Until the step's first attempt reported "measuring" (its claim committed, its heartbeat written)."""
    measuring = lambda: OptimizationStep.objects.get(pk=step_id).progress_message == "measuring"  # noqa: E731
    wait_for(measuring, WAIT, "the first attempt to start measuring")


@pytest.fixture
def sent(monkeypatch) -> list:
    """Each send of a chain's next link: (task name, args)."""
    sends: list = []
    monkeypatch.setattr(Signature, "apply_async", lambda self, *a, **k: sends.append((self.task, tuple(self.args))))
    return sends


@pytest.fixture
def first_blocks(monkeypatch) -> tuple[list, threading.Event]:
    """The database step's measure: the first call blocks until released; a later call (a second attempt, which
    must not happen) releases it and returns at once. The calls and the release event."""
    calls: list = []
    release = threading.Event()

    def measure(goals, progress):
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            assert release.wait(WAIT)
        else:
            release.set()
        return StepResult(findings={"attempt": len(calls)}, drafts=[])

    monkeypatch.setattr(STEPS["database"], "measure", measure)
    monkeypatch.setattr(STEPS["database"], "verdicts", lambda findings, goals: [])
    return calls, release


def _run_all() -> tuple[dict, list]:
    run = services.optimization_run_create(target="all")
    steps = {step.name: step.pk for step in run.steps.all()}
    links = [tasks.run_step.si(steps[n]) for n in ("caching", "model", "scaling")] + [tasks.finalize_run.si(run.pk)]
    return steps, links


# 1. A second delivery while the first attempt measures, its heartbeat alive.


def test_a_second_delivery_waits_for_the_live_attempt_and_neither_measures_nor_sends(
    settings, monkeypatch, sent, first_blocks
):
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = 3
    calls, release = first_blocks
    steps, links = _run_all()
    owner = in_thread(lambda: _deliver(steps["database"], links, redelivered=False))
    _measuring(steps["database"])

    def first_ends_meanwhile(seconds: float) -> None:  # the owner finishes while the second delivery waits
        release.set()
        threading.Event().wait(seconds)

    monkeypatch.setattr(services, "_wait_for_owner", first_ends_meanwhile)
    _deliver(steps["database"], links, redelivered=True)
    owner.join(WAIT)
    assert not owner.is_alive()

    step = OptimizationStep.objects.get(pk=steps["database"])
    assert calls == [1]  # was [1, 2]: the redelivery measured beside the first attempt
    assert step.attempts == 1 and step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert step.findings == {"attempt": 1}
    assert sent == [(tasks.run_step.name, (steps["caching"],))]  # by the owner, once


def test_a_second_delivery_leaves_a_step_still_beating_to_its_owner(settings, sent, first_blocks):
    """The owner outlives the second delivery's wait (its heartbeat thread beats while it measures in silence):
    the delivery returns, the step still running, and sends nothing; the owner finishes and sends once."""
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = 2  # the delivery waits 8 s (stale after 6 s), not 12
    calls, release = first_blocks
    steps, links = _run_all()
    owner = in_thread(lambda: _deliver(steps["database"], links, redelivered=False))
    _measuring(steps["database"])

    returned = _deliver(steps["database"], links, redelivered=True)
    assert calls == [1]
    assert returned == OptimizationStep.Status.RUNNING
    assert sent == []
    release.set()
    owner.join(WAIT)
    assert not owner.is_alive()

    step = OptimizationStep.objects.get(pk=steps["database"])
    assert step.attempts == 1 and step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert sent == [(tasks.run_step.name, (steps["caching"],))]


# 2. The owner silent (its worker lost): the delivery takes over; the old attempt, waking, drops its results.


@pytest.mark.parametrize("reports_progress", [True, False], ids=["wakes-and-reports", "wakes-and-stores"])
def test_a_silent_owner_is_taken_over_and_its_late_results_are_dropped(settings, monkeypatch, reports_progress):
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = 600  # no beat within the test: the owner's silence is written
    run = services.optimization_run_create(target="caching")
    step_id = run.steps.get().pk
    release, first = threading.Event(), []

    def measure(goals, progress):
        if not first:  # attempt 1: blocked (its worker "lost"), then wakes while attempt 2 still measures
            first.append(True)
            assert release.wait(WAIT)
            if reports_progress:
                progress(0.5, "attempt 1 goes on")
            return StepResult(findings={"attempt": 1}, drafts=[_draft("first")])
        release.set()
        old.join(WAIT)  # attempt 1 ends before attempt 2 stores anything
        assert not old.is_alive()
        return StepResult(findings={"attempt": 2}, drafts=[_draft("second")])

    monkeypatch.setattr(STEPS["caching"], "measure", measure)
    monkeypatch.setattr(STEPS["caching"], "verdicts", lambda findings, goals: [])
    old = in_thread(lambda: services.optimization_step_execute(step_id=step_id))
    _measuring(step_id)
    OptimizationStep.objects.filter(pk=step_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    step = services.optimization_step_execute(step_id=step_id)

    step.refresh_from_db()
    assert step.attempts == 2 and step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert step.findings == {"attempt": 2}  # was attempt 1's: the old attempt stored over the running step
    assert list(run.recommendations.values_list("subject", flat=True)) == ["second"]


# 3. A rolling upgrade: rows an older release's worker wrote (no token, no heartbeat) behave as before.


def test_a_running_step_without_a_heartbeat_is_taken_over_at_once(monkeypatch):
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    OptimizationStep.objects.filter(pk=step.pk).update(status="running", attempts=1)  # an older release's worker
    monkeypatch.setattr(services, "_wait_for_owner", lambda s: pytest.fail("waited for no owner"))
    monkeypatch.setattr(STEPS["caching"], "measure", lambda goals, progress: StepResult(findings={"x": 1}, drafts=[]))
    monkeypatch.setattr(STEPS["caching"], "verdicts", lambda findings, goals: [])

    step, left_to_owner = services.optimization_step_run(step_id=step.pk)
    assert step.status == OptimizationStep.Status.SUCCEEDED and step.attempts == 2 and not left_to_owner


def test_the_stuck_checker_leaves_a_step_without_a_heartbeat_to_the_deadline():
    run = services.optimization_run_create(target="all")
    run.steps.filter(name="database").update(status="running", attempts=1)
    assert services.optimization_runs_fail_stuck() == 0
    assert run.steps.get(name="database").status == OptimizationStep.Status.RUNNING


# The stuck checker: a step whose heartbeat stopped is failed long before the run's 2-hour deadline.


def test_the_stuck_checker_fails_a_run_whose_step_stopped_beating():
    run = services.optimization_run_create(target="all")
    live = services.optimization_run_create(target="all")
    run.steps.filter(name="database").update(status="running", attempts=1, attempt_token=uuid.uuid4(),
                                             started_at=Now() - timedelta(hours=2),
                                             heartbeat_at=Now() - timedelta(hours=1))  # fmt: skip
    live.steps.filter(name="database").update(status="running", attempts=1, attempt_token=uuid.uuid4(),
                                              heartbeat_at=Now())  # fmt: skip

    assert services.optimization_runs_fail_stuck() == 1
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED
    assert "worker was lost" in run.steps.get(name="database").error
    assert set(run.steps.values_list("status", flat=True)) == {OptimizationStep.Status.FAILED}
    assert live.steps.get(name="database").status == OptimizationStep.Status.RUNNING
    assert OptimizationRun.objects.get(pk=live.pk).status == OptimizationRun.Status.PENDING
