"""One definition of "the broker did not take the send", for every sender (admin actions, commands, services).

kombu raises its OperationalError only for a broker it cannot reach (its retries spent). A broker that answers
and refuses the connection raises the transport's own errors as they are: RabbitMQ's NOT_ALLOWED for a vhost
missing or down (amqp.exceptions.NotAllowed), ACCESS_REFUSED for rotated credentials (AccessRefused). Senders
that caught only OperationalError answered a 500 (admin actions) or a traceback (commands) for a refusal.
"""

from __future__ import annotations

import threading
import weakref

from celery import Celery, Task
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError

# A task that retries itself by hand (scaling.remove_objects, metrics.send_deleted_alert_resolution): from 30 s,
# twice as long each time, at most 10 minutes apart (6 retries: about 25 minutes).
RETRY_BACKOFF_SECONDS, RETRY_BACKOFF_MAX_SECONDS = 30, 600

_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Celery, dict[str, tuple[type[BaseException], ...]]] = weakref.WeakKeyDictionary()


def _transport_key(app: Celery) -> str:
    url = app.conf.broker_write_url or app.conf.broker_url or ""
    if isinstance(url, list | tuple):
        url = url[0] if url else ""
    return f"{app.conf.broker_transport or ''}|{str(url).split('://', 1)[0]}"


def send_errors(app: Celery) -> tuple[type[BaseException], ...]:
    """What `app`'s sends raise when the broker does not take them: kombu's OperationalError and the transport's
    connection and channel errors. Cached per app and transport (the classes are asked of a connection object,
    which does not connect)."""
    app = app._get_current_object() if hasattr(app, "_get_current_object") else app  # celery.current_app
    key = _transport_key(app)
    with _lock:
        known = _cache.setdefault(app, {})
        if key not in known:
            with app.connection_for_write() as connection:  # not connected: its transport's error classes only
                known[key] = (OperationalError, *connection.connection_errors, *connection.channel_errors)
        return known[key]


def broker_failure(exc: BaseException) -> str:
    """The refusal named, for a message: "the broker did not take it (NotAllowed: ...)"."""
    return f"the broker did not take it ({type(exc).__name__}: {exc})"


def retry_countdown(retries: int, *, jitter: bool = True) -> int:
    """Seconds before retry number `retries` + 1: RETRY_BACKOFF_SECONDS doubled per retry up to
    RETRY_BACKOFF_MAX_SECONDS, as Celery's retry_backoff; with `jitter`, a random part of it (Celery's full
    jitter), so that many tasks failing together do not retry together."""
    return get_exponential_backoff_interval(
        factor=RETRY_BACKOFF_SECONDS, retries=retries, maximum=RETRY_BACKOFF_MAX_SECONDS, full_jitter=jitter
    )


def retry_unless_refused(task: Task, **retry_kwargs) -> BaseException:
    """`task.retry(**retry_kwargs)`, which raises Retry once the retry is sent. retry() wraps the error of that
    send in Reject(requeue=False), so a send the broker refused dropped the message unseen: that refusal is
    returned instead, for the task to record; any other Reject is raised."""
    try:
        raise task.retry(**retry_kwargs)
    except Reject as rejected:
        if not isinstance(rejected.reason, send_errors(task.app)):
            raise
        return rejected.reason
