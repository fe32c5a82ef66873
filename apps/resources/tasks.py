from celery import shared_task

from apps.metrics.services import metric_points_record
from apps.resources import pools, services
from apps.resources.models import ResourceSample


def _series_record(sample: ResourceSample) -> None:
    metric_points_record(
        values={
            f"host.{name}": getattr(sample, name)
            for name in ("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct")
            if getattr(sample, name) is not None
        },
        at=sample.at,
    )


@shared_task(name="resources.monitor")
def monitor() -> int:
    sample = services.resources_sample()
    _series_record(sample)
    services.resource_samples_prune()
    services.resource_recommendations_prune()
    usage = pools.pool_usage_by_host()
    # The api and live pods, which never run this task, get a sample of their own from what they published.
    published = services.published_samples_record(usage or {}, own_host=sample.host)
    unsampled = {host: entry for host, entry in (usage or {}).items() if host not in published}
    open_ones = services.recommendations_update(sample=sample, pools=unsampled)
    for host, other in published.items():
        if other is None:  # this publish was recorded and judged by an earlier run
            continue
        _series_record(other)
        open_ones += services.recommendations_update(sample=other, pools={host: usage[host]})
    # A host publishing its pools (every 5 s, whatever its traffic) is alive while it has an entry at all;
    # with Redis unread, the hosts that only publish there are not known gone.
    seen = pools.pool_usage_by_host(fresh_seconds=pools.FORGET_SECONDS)
    if usage is not None and seen is not None:
        services.recommendations_of_gone_hosts_resolve(live_hosts=seen.keys())
    return len(open_ones)
