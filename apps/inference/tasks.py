"""Thin Celery tasks on the `inference` queue (settings: "inference.*" routes there)."""

from celery import shared_task

from apps.inference import services
from apps.inference.models import ModelDeployment


@shared_task(name="inference.profile_deployment", acks_late=True)
def profile_deployment(deployment_id: int) -> str:
    """Measure every quantization mode of one deployment on the worker's host; returns the chosen mode."""
    deployment = ModelDeployment.objects.get(pk=deployment_id)
    profiles = services.deployment_profile(deployment)
    return next(p.mode for p in profiles if p.chosen)
