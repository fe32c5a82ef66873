"""Thin Celery tasks; each is safe to run twice."""

from datetime import datetime

from celery import shared_task
from celery.signals import worker_init, worker_shutting_down

from apps.core.broker_errors import retry_countdown, retry_unless_refused
from apps.scaling import kube, services, shutdown

# Connected as the worker imports its tasks, before it starts: the forecasts stop when it shuts down.
worker_shutting_down.connect(shutdown.on_worker_shutting_down, weak=False, dispatch_uid="scaling.shutdown.flag")
worker_init.connect(shutdown.on_worker_init, weak=False, dispatch_uid="scaling.shutdown.clear")


@shared_task(name="scaling.forecast", bind=True)
def forecast(self) -> dict:
    """The hourly run: one set of forecasts per service and hour, however many beats sent it. It stops between
    forecasts when its worker is shutting down (the rest are the next run's)."""
    hostname = self.request.hostname
    return services.forecasts_refresh(scheduled=True, stopping=lambda: shutdown.worker_shutting_down(hostname))


@shared_task(name="scaling.apply_policy")
def apply_policy(policy_id: int, judged_state_at: str | None = None) -> str:
    """`judged_state_at`: sent by the checker, the ISO time of the state it judged due ("" for none yet);
    None by hand (admin), which applies whatever state it finds."""
    if judged_state_at is None:
        return services.policy_apply(policy_id=policy_id).apply_state
    return services.policy_apply(policy_id=policy_id, judged_state_at=_judged(judged_state_at)).apply_state


def _judged(judged_state_at: str) -> datetime | None:
    return datetime.fromisoformat(judged_state_at) if judged_state_at else None


@shared_task(name="scaling.withdraw_policy")
def withdraw_policy(policy_id: int, judged_state_at: str | None = None) -> str:
    """`judged_state_at`: as apply_policy's."""
    if judged_state_at is None:
        return services.policy_withdraw(policy_id=policy_id).apply_state
    return services.policy_withdraw(policy_id=policy_id, judged_state_at=_judged(judged_state_at)).apply_state


# Retried by hand, as autoretry_for=(kube.ApplyError,), retry_backoff=30 did (the same jittered backoff, 6 times,
# the last failure raised): autoretry let the worker reject a retry the broker refused, and the removal was
# dropped with no word of the autoscalers left on the cluster.
@shared_task(name="scaling.remove_objects", bind=True, max_retries=6)
def remove_objects(self, refs: list[dict[str, str]]) -> list[str]:
    """A deleted policy's autoscalers: no row is left to keep a failure on, so the task retries itself."""
    try:
        return services.deleted_objects_remove(refs)
    except kube.ApplyError as exc:
        countdown = retry_countdown(self.request.retries)
        refused = retry_unless_refused(self, countdown=countdown, exc=exc)  # refused: nothing tries again
        return services.deleted_objects_unsent(refs, error=exc, exc=refused)


@shared_task(name="scaling.reconcile")
def reconcile() -> list[int]:
    return services.policies_reconcile()


@shared_task(name="scaling.prune")
def prune() -> int:
    return services.forecasts_prune()
