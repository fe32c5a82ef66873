from celery import shared_task

from apps.metrics.selectors import NOT_SERVED, service_p95_ms
from apps.ratelimits import selectors, services
from apps.resources.selectors import database_now


@shared_task(name="ratelimits.adapt")
def adapt() -> int:
    """Adjust the adaptive policies to the load over the last SIGNAL_WINDOW: the resource monitor's CPU samples
    of every host (not this worker's own CPU) and each service's p95 of the requests it served (not the fast
    refusals: its 429s, 503s and 4xx, metrics.selectors.NOT_SERVED), where it served enough of them for a p95
    to mean something."""
    # The database's clock, which stamps the resource samples and the controller's steps: this worker's may
    # run minutes ahead (no recent sample: no CPU signal, a tightening lapses) or behind (old samples read).
    since = database_now() - services.SIGNAL_WINDOW
    signals = services.LoadSignals(
        cpu_pct=selectors.host_cpu_pct(since=since),
        p95_ms_by_service=service_p95_ms(
            since=since, min_requests=services.P95_MIN_REQUESTS, exclude_status_classes=NOT_SERVED
        ),
    )
    return len(services.ratelimits_adapt(signals=signals))


@shared_task(name="ratelimits.prune_adjustments")
def prune_adjustments() -> int:
    return services.ratelimit_adjustments_prune()


@shared_task(name="ratelimits.prune_hits")
def prune_hits() -> int:
    return services.ratelimit_hits_prune()
