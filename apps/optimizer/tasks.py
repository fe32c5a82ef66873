"""Thin Celery tasks: every one is safe to run twice (acks late, redelivered when a worker is lost)."""

from celery import shared_task, signature

from apps.core.schedules import beat_schedule_name
from apps.optimizer import services


# The chain's next link is sent by the task, not by Celery once it returned: a send the broker refused was an
# internal error there, after the step had succeeded, and left the run running (optimization_run_next_send).
# Sent as Celery's tracer sends a chain's link (celery/app/trace.py): through amqp._retry_publish, which retries
# this one message under the app's publish retry policy (reconnecting, waiting between tries), so a short broker
# blip is ridden out before the run is failed; and with the parent's priority where the app inherits it.
@shared_task(name="optimizer.run_step", bind=True)
def run_step(self, step_id: int) -> str:
    step, left_to_owner = services.optimization_step_run(step_id=step_id)
    links, self.request.chain = self.request.chain, None
    if links and not left_to_owner:  # else the live attempt that owns the step sends what follows
        request = self.request
        priority = (request.delivery_info or {}).get("priority") if self.app.conf.task_inherit_parent_priority else None
        next_link = signature(links[-1], app=self.app)
        services.optimization_run_next_send(
            step_id=step_id,
            send=lambda: self.app.amqp._retry_publish(
                next_link.apply_async, (step.status,), chain=links[:-1], parent_id=request.id,
                root_id=request.root_id or request.id, priority=priority,
            ),
            redelivered=bool((request.delivery_info or {}).get("redelivered")),
        )  # fmt: skip
    return step.status


@shared_task(name="optimizer.apply_recommendation")
def apply_recommendation(recommendation_id: int, queued_at: str | None = None) -> str | None:
    recommendation = services.recommendation_apply_queued(recommendation_id=recommendation_id, queued_at=queued_at)
    return recommendation.status if recommendation else None


@shared_task(name="optimizer.finalize_run")
def finalize_run(run_id: int) -> str:
    return services.optimization_run_finalize(run_id=run_id).status


@shared_task(name="optimizer.scheduled_run", bind=True)
def scheduled_run(self, target: str = "all", apply: bool = False) -> int:
    # Beat marks its sends (header celery_beat_task); the admin's "Run selected tasks" names the schedule only.
    schedule = beat_schedule_name(self.request)
    headers = self.request.headers if isinstance(self.request.headers, dict) else {}
    by_beat = bool(getattr(self.request, "celery_beat_task", None) or headers.get("celery_beat_task"))
    by_hand = schedule is not None and not by_beat
    return services.optimization_run_scheduled(target=target, apply=apply, schedule=schedule, by_hand=by_hand).pk


@shared_task(name="optimizer.fail_stuck_runs")
def fail_stuck_runs() -> int:
    return services.optimization_runs_fail_stuck()
