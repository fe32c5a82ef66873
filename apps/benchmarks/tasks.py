"""Thin Celery tasks on the `benchmarks` queue (routed by name; the checker on `default`); each is safe to
run twice."""

import logging
from datetime import timedelta

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun

logger = logging.getLogger(__name__)


# A run is acknowledged when a worker takes it, unlike the other tasks: it lasts up to a day, and RabbitMQ
# takes back a delivery unacknowledged for 30 minutes (consumer_timeout) and hands it to another worker,
# which would load the target a second time. A run whose worker dies is failed by the checker instead
# (its heartbeat stops); started over, it would measure a target the first attempt had been loading.
# While another run loads the same target, a run waits this long between tries (pending, saying for which
# run; the checker fails it after a day of waiting).
TARGET_BUSY_RETRY_SECONDS = 30
# A plan's schedule is nightly: a second send within this long is the same night's (see _scheduled_run_create);
# a schedule edited to fire more often runs the plan at most this often.
SCHEDULED_RUN_ONCE_WITHIN = timedelta(hours=12)


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
        raise self.retry(countdown=TARGET_BUSY_RETRY_SECONDS) from busy


@shared_task(name="benchmarks.scheduled_run", acks_late=False)
def scheduled_run(plan_id: int) -> int | None:
    try:
        run = _scheduled_run_create(plan_id)
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
        execute_run.apply_async(args=[run.pk], countdown=TARGET_BUSY_RETRY_SECONDS)
    return run.pk


def _scheduled_run_create(plan_id: int) -> BenchmarkRun | None:
    """The schedule's run of an enabled plan, or None. Once per night: two beats (an evicted pod terminating
    beside its replacement) each send the schedule, and a second send taken after the first run ended (a
    fast failure, or queued behind the nightly runs on the benchmarks workers) ran the plan again. Decided
    under the plan's lock, so two sends taken at once see each other."""
    with transaction.atomic():
        plans = BenchmarkPlan.objects.select_for_update(of=("self",)).select_related("service")
        plan = plans.filter(pk=plan_id, enabled=True).first()
        if plan is None:
            return None
        if problem := plan.service.base_url_error:
            # The plan's checks would refuse it for a reason of their own (a port past 65535 "is not in
            # BENCHMARK_TOKEN_HOSTS"): the log says what to fix.
            logger.warning(
                "benchmark plan %s: its scheduled run was skipped, %s", plan_id, services.unusable_base_url(problem)
            )
            return None
        since = timezone.now() - SCHEDULED_RUN_ONCE_WITHIN
        earlier = plan.runs.filter(requested_by="schedule", created_at__gte=since).order_by("-created_at").first()
        if earlier is not None:
            logger.warning("benchmark plan %s: a second send of its schedule, run #%s is its run", plan_id, earlier.pk)
            return None
        return services.benchmark_run_create(plan=plan, requested_by="schedule")


# On the default queue, whatever its name routes to: on the benchmarks queue, a day-long run holding the
# worker starved it, and the runs it exists to fail (or send again) waited behind the very load they wait on.
@shared_task(name="benchmarks.fail_stuck_runs")
def fail_stuck_runs() -> int:
    return services.benchmark_runs_fail_stuck()
