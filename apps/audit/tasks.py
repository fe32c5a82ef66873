"""Thin Celery wrappers around audit services."""

from celery import shared_task

from apps.audit.services import PartitionsLockBusy, audit_partitions_ensure_attempt


# max_retries=None: the service bounds the attempts (PARTITION_ATTEMPTS) and reports the last one's failure.
@shared_task(name="audit.ensure_partitions", bind=True, ignore_result=True, max_retries=None)
def ensure_partitions(self, months_ahead: int = 3) -> list[str]:
    """Idempotent: creates only the monthly partitions that do not exist yet. Behind a long reader of the trail
    it retries with backoff (no worker slot held meanwhile); a run that still fails is logged as an error and
    noted by `audit verify`. An eager retry (tests, CELERY_TASK_ALWAYS_EAGER) runs at once, countdown ignored."""
    try:
        return audit_partitions_ensure_attempt(months_ahead=months_ahead, attempt=self.request.retries + 1)
    except PartitionsLockBusy as busy:
        raise self.retry(countdown=busy.retry_in) from busy
