from celery import shared_task

from apps.metrics.services import metric_points_record
from apps.resources import services


@shared_task(name="resources.monitor")
def monitor() -> int:
    sample = services.resources_sample()
    metric_points_record(
        values={
            f"host.{name}": getattr(sample, name)
            for name in ("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct")
            if getattr(sample, name) is not None
        },
        at=sample.at,
    )
    services.resource_samples_prune()
    services.resource_recommendations_prune()
    open_ones = services.recommendations_update(sample=sample)
    services.recommendations_of_gone_hosts_resolve()
    return len(open_ones)
