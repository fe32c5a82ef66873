from celery import shared_task

from apps.caching import services


@shared_task(name="caching.prune_entries")
def prune_entries() -> int:
    return services.cache_entries_prune()
