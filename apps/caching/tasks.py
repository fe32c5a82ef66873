from celery import shared_task

from apps.caching import services


@shared_task(name="caching.prune_entries")
def prune_entries() -> int:
    """The L3 entries past their stale window, and the counters of processes long gone (folded, not lost)."""
    services.cache_stats_retire()
    return services.cache_entries_prune()
