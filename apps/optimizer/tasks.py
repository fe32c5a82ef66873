"""Thin Celery tasks: every one is safe to run twice (acks late, redelivered when a worker is lost)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from apps.core.beat_liveness import scheduled_task_lock
from apps.optimizer import services
from apps.optimizer.models import OptimizationRun

logger = logging.getLogger(__name__)

# A schedule's second send of the same run within this long is dropped: two beats (an evicted pod terminating
# beside its replacement) each sent the nightly run, and two runs measured (and, with apply, changed) the
# same figures side by side. The schedule is nightly; one edited to fire more often runs at most this often.
SCHEDULED_RUN_ONCE_WITHIN = timedelta(hours=12)


@shared_task(name="optimizer.run_step")
def run_step(step_id: int) -> str:
    return services.optimization_step_execute(step_id=step_id).status


@shared_task(name="optimizer.finalize_run")
def finalize_run(run_id: int) -> str:
    return services.optimization_run_finalize(run_id=run_id).status


@shared_task(name="optimizer.scheduled_run")
def scheduled_run(target: str = "all", apply: bool = False) -> int:
    """A schedule's run: its steps are sent to the workers like any other run's. Once per schedule: a run of
    the same schedule started within SCHEDULED_RUN_ONCE_WITHIN is the one this send asked for (its pk)."""
    with transaction.atomic():
        scheduled_task_lock(f"optimizer.scheduled_run:{target}:{apply}")
        earlier = None
        if isinstance(apply, bool) and target in OptimizationRun.Target.values:  # else the create says why not
            earlier = OptimizationRun.objects.filter(
                requested_by="schedule", target=target, apply=apply,
                started_at__gte=timezone.now() - SCHEDULED_RUN_ONCE_WITHIN,
            ).first()  # fmt: skip
        if earlier is not None:
            logger.warning("optimizer: a second send of the %s schedule; run #%s is its run", target, earlier.pk)
            return earlier.pk
        run = services.optimization_run_create(target=target, apply=apply, requested_by="schedule")
        services.optimization_run_dispatch(run)  # sent once the run is committed
    return run.pk


@shared_task(name="optimizer.fail_stuck_runs")
def fail_stuck_runs() -> int:
    return services.optimization_runs_fail_stuck()
