"""Thin Celery tasks: every one is safe to run twice (acks late, redelivered when a worker is lost)."""

from celery import shared_task

from apps.optimizer import services


@shared_task(name="optimizer.run_step")
def run_step(step_id: int) -> str:
    return services.optimization_step_execute(step_id=step_id).status


@shared_task(name="optimizer.finalize_run")
def finalize_run(run_id: int) -> str:
    return services.optimization_run_finalize(run_id=run_id).status


@shared_task(name="optimizer.scheduled_run")
def scheduled_run(target: str = "all", apply: bool = False) -> int:
    return services.optimization_run_scheduled(target=target, apply=apply).pk


@shared_task(name="optimizer.fail_stuck_runs")
def fail_stuck_runs() -> int:
    return services.optimization_runs_fail_stuck()
