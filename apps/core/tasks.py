"""Thin Celery wrappers around core services."""

import logging

from celery import shared_task

from apps.core.selectors import default_queue, long_queues
from apps.core.services import worker_heartbeat_record

logger = logging.getLogger(__name__)

# A relayed heartbeat older than this says nothing about now (as beat's schedule: expire_seconds 60); the
# broker drops it by then too (a per-message TTL), so a long queue without a worker does not fill with them.
RELAYED_HEARTBEAT_EXPIRES_SECONDS = 60


@shared_task(name="core.heartbeat", bind=True, ignore_result=True)
def heartbeat(self, nonce: str | None = None, queue: str | None = None) -> dict:
    """Scheduled by beat on `default`: proves a worker consumes it, and relays a heartbeat to each long queue
    (`queue` names it) so that /readyz sees their worker too."""
    delivered = (self.request.delivery_info or {}).get("routing_key")
    known = (default_queue(), *long_queues())
    taken_from = queue or (delivered if delivered in known else default_queue())
    beat = worker_heartbeat_record(hostname=self.request.hostname, nonce=nonce, queues=[taken_from])
    if queue is None and nonce is None and taken_from == default_queue():
        for long_queue in long_queues():
            try:
                self.apply_async(
                    kwargs={"queue": long_queue},
                    queue=long_queue,
                    expires=RELAYED_HEARTBEAT_EXPIRES_SECONDS,
                    expiration=RELAYED_HEARTBEAT_EXPIRES_SECONDS,
                    retry=False,
                )
            except Exception:
                logger.warning("Could not relay the heartbeat to the %s queue", long_queue, exc_info=True)
    return beat
