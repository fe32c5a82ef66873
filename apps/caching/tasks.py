from celery import shared_task

from apps.caching import services


@shared_task(name="caching.prune_entries")
def prune_entries() -> int:
    """The L3 entries past their stale window, and the counters of processes long gone (folded, not lost)."""
    services.cache_stats_retire()
    return services.cache_entries_prune()


@shared_task(name="caching.prune_scope_generations")
def prune_scope_generations() -> int:
    """The scope generation rows of patients not written for longer than any entry lives."""
    return services.cache_scope_generations_prune()


@shared_task(name="caching.delete_namespace_entries")
def delete_namespace_entries(namespace: str) -> int:
    """The L3 rows of a namespace just cleared (already unreachable), in batches after the clear's commit."""
    return services.cache_namespace_entries_delete(namespace=namespace)
