"""Thin Celery tasks; each is safe to run twice."""

from celery import shared_task

from apps.scaling import services


@shared_task(name="scaling.forecast")
def forecast() -> dict:
    return services.forecasts_refresh()


@shared_task(name="scaling.apply_policy")
def apply_policy(policy_id: int) -> str:
    return services.policy_apply(policy_id=policy_id).apply_state


@shared_task(name="scaling.reconcile")
def reconcile() -> list[int]:
    return services.policies_reconcile()


@shared_task(name="scaling.prune")
def prune() -> int:
    return services.forecasts_prune()
