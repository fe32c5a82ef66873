"""Thin Celery tasks on the `benchmarks` queue (routed by name; the checker on `default`); each is safe to
run twice."""

import logging

from celery import shared_task
from django.core.exceptions import ValidationError

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkRun
from apps.core.broker_errors import retry_unless_refused, send_errors

logger = logging.getLogger(__name__)


# A run is acknowledged when a worker takes it, unlike the other tasks: it lasts up to a day, and RabbitMQ
# takes back a delivery unacknowledged for 30 minutes (consumer_timeout) and hands it to another worker,
# which would load the target a second time. A run whose worker dies is failed by the checker instead
# (its heartbeat stops); started over, it would measure a target the first attempt had been loading.
# While another run loads the same target, a run waits this long between tries (pending, saying for which
# run; the checker fails it after a day of waiting).
TARGET_BUSY_RETRY_SECONDS = 30


# max_retries=None on the task: retry()'s own max_retries=None means "the task's limit", Celery's 3, and a
# run waiting behind one longer than 90 s was dropped (left pending until the checker failed it a day later).
@shared_task(name="benchmarks.execute_run", acks_late=False, bind=True, max_retries=None)
def execute_run(self, run_id: int) -> str:
    try:
        return services.benchmark_run_execute(run_id=run_id).status
    except services.TargetBusy as busy:
        logger.info("benchmark run %s waits: %s", run_id, busy)
        if self.request.is_eager:  # an eager retry runs again at once, countdown ignored: it would spin
            return BenchmarkRun.Status.PENDING
        refused = retry_unless_refused(self, countdown=TARGET_BUSY_RETRY_SECONDS)  # refused: left to the checker
        services.benchmark_run_wait_unsent(run_id=run_id, busy=busy.run, exc=refused)
        return BenchmarkRun.Status.PENDING


@shared_task(name="benchmarks.scheduled_run", acks_late=False)
def scheduled_run(plan_id: int) -> int | None:
    try:
        run = services.benchmark_run_scheduled_create(plan_id=plan_id)
    except ValidationError:
        logger.warning("benchmark plan %s is not valid; its scheduled run was skipped", plan_id, exc_info=True)
        return None
    except services.RunInProgress as busy:
        logger.warning("benchmark plan %s: its scheduled run was skipped, %s", plan_id, busy)
        return None
    if run is None:
        return None
    try:
        services.benchmark_run_execute(run_id=run.pk)  # already on a benchmarks worker: run it here
    except services.TargetBusy as busy:  # another plan's nightly run on the same target: after it
        logger.info("benchmark run %s waits: %s", run.pk, busy)
        try:
            execute_run.apply_async(args=[run.pk], countdown=TARGET_BUSY_RETRY_SECONDS)
        except send_errors(execute_run.app) as exc:
            services.benchmark_run_wait_unsent(run_id=run.pk, busy=busy.run, exc=exc)
    return run.pk


# On the default queue, whatever its name routes to: on the benchmarks queue, a day-long run holding the
# worker starved it, and the runs it exists to fail (or send again) waited behind the very load they wait on.
@shared_task(name="benchmarks.fail_stuck_runs")
def fail_stuck_runs() -> int:
    return services.benchmark_runs_fail_stuck()
