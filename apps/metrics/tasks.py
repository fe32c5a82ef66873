from celery import shared_task

from apps.core.broker_errors import retry_countdown, retry_unless_refused
from apps.metrics import services


@shared_task(name="metrics.collect")
def collect() -> int:
    """Each minute: the cache namespaces' reads and loads since the last minute."""
    return len(services.cache_series_record())


@shared_task(name="metrics.evaluate_alerts")
def evaluate_alerts() -> int:
    return len(services.alerts_evaluate())


@shared_task(name="metrics.retention")
def retention() -> dict:
    return services.retention_apply()


class DeliveryFailed(Exception):
    """A deleted rule's "resolved" not delivered on some channels: retried on those alone."""

    def __init__(self, channels: list[str]):
        super().__init__(f"not delivered via {', '.join(channels)}")
        self.channels = channels


# On `default`, with metrics.evaluate_alerts, and acked late like every task (a worker lost mid-send sends it
# again: a receiver may hear "resolved" twice, never not at all); retried 6 times from 30 s (retry_countdown, about
# 25 minutes), the channels delivered already left out. Unlike scaling.remove_objects, without jitter: one
# deleted rule's notice is retried alone, and tests/metrics/test_rule_delete_i2_queued pins the countdowns.
@shared_task(name="metrics.send_deleted_alert_resolution", bind=True, ignore_result=True, max_retries=6)
def deleted_alert_resolution_send(self, notice: dict, channels: list[str]) -> None:
    """A deleted rule's firing alert: its "resolved", built before the delete (alert_of_deleted_rule_resolve)."""
    last_try = self.request.retries >= self.max_retries
    failed = services.deleted_alert_resolution_send(notice=notice, channels=channels, last_try=last_try)
    if failed and not last_try:
        countdown = retry_countdown(self.request.retries, jitter=False)
        refused = retry_unless_refused(  # refused: nothing tries again
            self,
            kwargs={"notice": notice, "channels": failed},
            countdown=countdown,
            exc=DeliveryFailed(failed),
            kwargsrepr=services.alert_notice_repr(notice, failed),
        )
        services.deleted_alert_resolution_unsent(notice=notice, channels=failed, exc=refused)
