"""Thin Celery wrappers around audit services."""

from celery import shared_task

from apps.audit.services import audit_partitions_ensure


@shared_task(name="audit.ensure_partitions", ignore_result=True)
def ensure_partitions(months_ahead: int = 3) -> list[str]:
    """Idempotent: creates only the monthly partitions that do not exist yet."""
    return audit_partitions_ensure(months_ahead=months_ahead)
