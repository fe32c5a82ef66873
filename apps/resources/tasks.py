import math
import socket

from celery import shared_task

from apps.core.schedules import beat_schedule_name
from apps.metrics.services import metric_points_record
from apps.resources import pools, services
from apps.resources.models import ResourceSample

SERIES_FIGURES = ("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct")


def _series_record(*samples: ResourceSample) -> None:
    """One point per figure and run in `host.<figure>`: the busiest of the hosts sampled in it, what the
    dashboard shows of the steps past the 30 days the per-host samples are kept (metrics.selectors.time_series).
    A point per host's sample averaged unlike hosts: a worker at 97% of its memory limit beside an idle api
    pod read 63.5%. Points stored before this are that blend."""
    values = {}
    for name in SERIES_FIGURES:
        figures = [value for s in samples if (value := getattr(s, name)) is not None and math.isfinite(value)]
        if figures:
            values[f"host.{name}"] = max(figures)
    metric_points_record(values=values, at=samples[0].at)


@shared_task(name="resources.monitor", bind=True)
def monitor(self) -> int:
    # Read first: this host's own sample takes the busiest pool of its processes (the api's, on one host), the
    # figure its recommendation is judged by, not the worker's alone.
    usage = pools.pool_usage_by_host()
    sample = services.resources_sample_once_per_interval(
        schedule=beat_schedule_name(self.request), published=(usage or {}).get(socket.gethostname())
    )
    if sample is None:
        return 0
    services.resource_samples_prune()
    services.resource_recommendations_prune()
    # The api and live pods, which never run this task, get a sample of their own from what they published.
    published = services.published_samples_record(usage or {}, own_host=sample.host)
    # None: this publish was recorded and judged by an earlier run
    others = {host: other for host, other in published.items() if other is not None}
    _series_record(sample, *others.values())
    unsampled = {host: entry for host, entry in (usage or {}).items() if host not in published}
    open_ones = services.recommendations_update(sample=sample, pools=unsampled)
    for host, other in others.items():
        open_ones += services.recommendations_update(sample=other, pools={host: usage[host]})
    # A host publishing its pools (every 5 s, whatever its traffic) is alive while it has an entry at all;
    # with Redis unread, the hosts that only publish there are not known gone.
    seen = pools.pool_usage_by_host(fresh_seconds=pools.FORGET_SECONDS)
    if usage is not None and seen is not None:
        services.recommendations_of_gone_hosts_resolve(live_hosts=seen.keys())
    return len(open_ones)
