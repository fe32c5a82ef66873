from celery import shared_task

from apps.metrics.services import metric_points_record
from apps.resources import pools, services


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
    usage = pools.pool_usage_by_host()
    open_ones = services.recommendations_update(sample=sample, pools=usage)
    # A host publishing its pools (every 5 s, whatever its traffic) is alive while it has an entry at all;
    # with Redis unread, the hosts that only publish there are not known gone.
    seen = pools.pool_usage_by_host(fresh_seconds=pools.FORGET_SECONDS)
    if usage is not None and seen is not None:
        services.recommendations_of_gone_hosts_resolve(live_hosts=seen.keys())
    return len(open_ones)
