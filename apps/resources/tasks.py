from celery import shared_task

from apps.resources import services


@shared_task(name="resources.monitor")
def monitor() -> int:
    sample = services.resources_sample()
    services.resource_samples_prune()
    return len(services.recommendations_update(sample=sample))
