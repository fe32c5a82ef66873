from celery import shared_task

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
