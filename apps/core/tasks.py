"""Thin Celery wrappers around core services."""

from celery import shared_task

from apps.core.services import worker_heartbeat_record


@shared_task(name="core.heartbeat", bind=True, ignore_result=True)
def heartbeat(self, nonce: str | None = None) -> dict:
    """Scheduled by beat; proves a worker consumes the default queue."""
    return worker_heartbeat_record(hostname=self.request.hostname, nonce=nonce)
