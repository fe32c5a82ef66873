"""Review G on real workers: two Celery worker processes, the database step measuring on one (its patient sample
read blocked by a table lock this test holds: the stand-in for minutes of measuring) when a second copy of its
message (as RabbitMQ redelivers it once the first worker's connection breaks) reaches the other. The second worker
must leave the step to the first (its heartbeat alive): one attempt, one measurement, and the run ends once.
And the first worker SIGKILLed mid-step: the message redelivered at once to the other finds the step's last beat
still fresh; it waits for it to go stale and takes the step over (left to a dead owner, the run waited for the
stuck checker).
Real PostgreSQL, RabbitMQ, and two `celery worker -P solo` processes (prefetch 1, acks late: the busy one takes
no second message)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from celery import chain

from apps.clinical.models import Patient
from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep
from tests.helpers import WORKER_QUEUES, celery_worker, queue_consumers, wait_for
from tests.optimizer.support import connect

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 180


def test_a_second_copy_on_another_worker_leaves_the_step_to_the_one_measuring(data, request, monkeypatch,
                                                                              broker_emptied):  # fmt: skip
    monkeypatch.setenv("OPTIMIZER_STEP_HEARTBEAT_SECONDS", "3")  # the workers': a wait of 12 s, not 60
    wait_for(lambda: not any(queue_consumers(WORKER_QUEUES).values()), 60, "the consumers of an earlier test to stop")
    run = services.optimization_run_create(target="database")
    step_id = run.steps.get().pk
    holder = connect()
    with ExitStack() as stack:
        stack.callback(holder.close)
        logs = [stack.enter_context(celery_worker(request))[2] for _ in range(2)]
        wait_for(lambda: min(queue_consumers(WORKER_QUEUES).values()) >= 2, WAIT, "both workers to consume", logs[0])
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {Patient._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        stack.callback(lambda: holder.execute("ROLLBACK"))

        chain(tasks.run_step.si(step_id), tasks.finalize_run.si(run.pk)).apply_async()
        first = lambda: OptimizationStep.objects.get(pk=step_id)  # noqa: E731
        wait_for(lambda: first().progress_message == "measuring", WAIT, "the first worker to measure", logs[0])
        # The second copy of the message, as the broker redelivers it: the first worker is busy (prefetch 1).
        chain(tasks.run_step.si(step_id), tasks.finalize_run.si(run.pk)).apply_async()
        left = lambda: any("is left to its running attempt" in log.read_text(errors="replace") for log in logs)  # noqa: E731
        wait_for(lambda: left() or first().attempts > 1, WAIT, "the second copy to be decided", logs[1])
        assert first().attempts == 1  # was 2: the second worker measured beside the first
        assert first().status == OptimizationStep.Status.RUNNING

        holder.execute("ROLLBACK")  # the first worker's measurement goes on
        finished = lambda: OptimizationRun.objects.get(pk=run.pk).is_finished  # noqa: E731
        wait_for(finished, WAIT, "the run to finish", logs[0])

    run.refresh_from_db()
    step = run.steps.get()
    assert step.attempts == 1 and step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert run.status == OptimizationRun.Status.SUCCEEDED, run.error


def test_a_step_whose_worker_is_killed_is_taken_over_by_the_redelivery(data, request, monkeypatch,
                                                                      broker_emptied):  # fmt: skip
    monkeypatch.setenv("OPTIMIZER_STEP_HEARTBEAT_SECONDS", "3")
    wait_for(lambda: not any(queue_consumers(WORKER_QUEUES).values()), 60, "the consumers of an earlier test to stop")
    run = services.optimization_run_create(target="database")
    step_id = run.steps.get().pk
    holder = connect()
    with ExitStack() as stack:
        stack.callback(holder.close)
        workers = [stack.enter_context(celery_worker(request))[1:] for _ in range(2)]
        wait_for(
            lambda: min(queue_consumers(WORKER_QUEUES).values()) >= 2, WAIT, "both workers to consume", workers[0][1]
        )
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {Patient._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        stack.callback(lambda: holder.execute("ROLLBACK"))

        chain(tasks.run_step.si(step_id), tasks.finalize_run.si(run.pk)).apply_async()
        step = lambda: OptimizationStep.objects.get(pk=step_id)  # noqa: E731
        wait_for(lambda: step().progress_message == "measuring", WAIT, "a worker to measure", workers[0][1])
        took = lambda log: "optimizer.run_step[" in log.read_text(errors="replace")  # noqa: E731
        wait_for(lambda: any(took(log) for _, log in workers), WAIT, "the worker's log to name the step")
        (owner, _), (_, other_log) = sorted(workers, key=lambda worker: not took(worker[1]))
        owner.kill()  # SIGKILL: the broker redelivers the message to the other worker at once
        owner.wait()
        wait_for(lambda: step().attempts == 2, WAIT, "the other worker to take the step over", other_log)
        holder.execute("ROLLBACK")
        finished = lambda: OptimizationRun.objects.get(pk=run.pk).is_finished  # noqa: E731
        wait_for(finished, WAIT, "the run to finish", other_log)

    run.refresh_from_db()
    assert run.steps.get().attempts == 2
    assert run.status == OptimizationRun.Status.SUCCEEDED, run.error
