"""Thin Celery wrappers around core services."""

import contextlib
import functools
import logging

from celery import shared_task

from apps.core.selectors import default_queue, long_queues
from apps.core.services import relayed_heartbeat_claim, relayed_heartbeat_taken, worker_heartbeat_record

logger = logging.getLogger(__name__)

# A relayed heartbeat older than this says nothing about now (as beat's schedule: expire_seconds 60); the
# broker drops it by then too where it can (RabbitMQ's per-message TTL); and no copy is relayed while the last
# one waits untaken (relayed_heartbeat_claim), so a long queue without a worker does not fill with them.
RELAYED_HEARTBEAT_EXPIRES_SECONDS = 60
# The brokers that drop a message once its `expiration` passes; the others keep it until it is consumed.
BROKERS_DROPPING_EXPIRED = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})


@functools.cache
def _broker_drops_expired(app) -> bool:
    """Whether `app`'s broker drops expired messages, read from its URL once per process: the URL does not
    change while a process runs, and every heartbeat (each beat, on `default`) parsed it again."""
    url = app.conf.broker_url
    first = (url[0] if isinstance(url, list | tuple) else str(url or "")).split(";")[0]
    return first.split("://", 1)[0].split("+")[-1].lower() in BROKERS_DROPPING_EXPIRED


@shared_task(name="core.heartbeat", bind=True, ignore_result=True)
def heartbeat(self, nonce: str | None = None, queue: str | None = None) -> dict:
    """Scheduled by beat on `default`: proves a worker consumes it, and relays a heartbeat to each long queue
    (`queue` names it) so that /readyz sees their worker too."""
    delivered = (self.request.delivery_info or {}).get("routing_key")
    known = (default_queue(), *long_queues())
    taken_from = queue or (delivered if delivered in known else default_queue())
    beat = worker_heartbeat_record(hostname=self.request.hostname, nonce=nonce, queues=[taken_from])
    if taken_from != default_queue():
        relayed_heartbeat_taken(taken_from)
    if queue is None and nonce is None and taken_from == default_queue():
        drops_expired = _broker_drops_expired(self.app)
        for long_queue in long_queues():
            try:
                if not relayed_heartbeat_claim(
                    long_queue, expires_seconds=RELAYED_HEARTBEAT_EXPIRES_SECONDS, broker_drops_expired=drops_expired
                ):
                    continue
                self.apply_async(
                    kwargs={"queue": long_queue},
                    queue=long_queue,
                    expires=RELAYED_HEARTBEAT_EXPIRES_SECONDS,
                    expiration=RELAYED_HEARTBEAT_EXPIRES_SECONDS,
                    retry=False,
                )
            except Exception:
                logger.warning("Could not relay the heartbeat to the %s queue", long_queue, exc_info=True)
                with contextlib.suppress(Exception):  # none sent: the next beat tries again
                    relayed_heartbeat_taken(long_queue)
    return beat


@shared_task(name="core.prune_sign_ins", ignore_result=True)
def prune_sign_ins() -> dict:
    """Scheduled hourly by beat: expired sessions and sign-in log rows past their retention."""
    from apps.core.services import sessions_expired_prune, sign_in_log_prune

    return {"sessions": sessions_expired_prune(), "sign_in_log": sign_in_log_prune()}


@shared_task(name="core.prune_history")
def prune_history() -> dict:
    """Scheduled daily by beat: finished run history past HISTORY_KEEP_DAYS; the number deleted per model."""
    from apps.core.services import history_prune

    return history_prune()
