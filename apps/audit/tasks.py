"""Thin Celery wrappers around audit services."""

from celery import shared_task

from apps.audit.services import audit_partitions_ensure_retrying


@shared_task(name="audit.ensure_partitions", ignore_result=True)
def ensure_partitions(months_ahead: int = 3) -> list[str]:
    """Idempotent: creates only the monthly partitions that do not exist yet. Waits out a long reader of the
    trail (tries again with backoff); a run that still fails is logged as an error and noted by `audit verify`."""
    return audit_partitions_ensure_retrying(months_ahead=months_ahead)
