"""Whether the Celery worker running a task is shutting down, so a long task (the hourly forecasts: a fresh `make
run` queues one for every service, 37.6 s once) stops between its units of work and the warm shutdown ends
within its grace period. Past it the worker got SIGQUIT, then SIGKILL, and the task was cut off mid-forecast.

Celery's `worker_shutting_down` signal reaches the worker's main process only; with the prefork pool the task
runs in a child forked before it. So the flag is kept twice: in this process, for the solo and thread pools
(and the main process itself), and in the shared cache under the worker's node name, which the task knows
(its request's hostname) wherever it runs. A worker of the same name clears it when it starts.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

# Longer than any warm shutdown (the worker pods' terminationGracePeriodSeconds is 120): a flag left by a worker
# that died before clearing it lapses by itself.
FLAG_SECONDS = 15 * 60
_stopping: set[str] = set()  # node names of workers of this process that are shutting down


def _key(hostname: str) -> str:
    return f"celery:worker-shutting-down:{hostname}"


def worker_shutting_down(hostname: str | None) -> bool:
    """Whether the worker named `hostname` (a task's `request.hostname`) is shutting down. No name (a task
    called in-process, not by a worker): never."""
    if not hostname:
        return False
    if hostname in _stopping:
        return True
    from django.core.cache import cache

    try:
        return bool(cache.get(_key(hostname)))
    except Exception:  # the shared cache away: any backend's error; the task goes on, as it did before
        logger.warning("Could not read whether worker %s is shutting down", hostname, exc_info=True)
        return False


def on_worker_shutting_down(sender: str | None = None, **kwargs) -> None:
    """Celery's `worker_shutting_down` receiver (sender: the worker's node name). It runs inside the worker's
    signal handler, which may have interrupted a cache call of this thread (a solo pool's task): the shared
    cache is written from a thread of its own."""
    if not sender:
        return
    _stopping.add(sender)
    threading.Thread(target=_publish, args=(sender,), name="shutdown-flag", daemon=True).start()


def _publish(hostname: str) -> None:
    from django.core.cache import cache

    try:
        cache.set(_key(hostname), True, timeout=FLAG_SECONDS)
    except Exception:  # a prefork child's task then runs to its end, as before
        logger.warning("Could not tell worker %s's pool that it is shutting down", hostname, exc_info=True)


def on_worker_init(sender=None, **kwargs) -> None:
    """Celery's `worker_init` receiver (sender: the worker): a worker restarted under its old node name (one
    machine's `make run`) starts with no flag of the one before."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    _stopping.discard(hostname)
    from django.core.cache import cache

    try:
        cache.delete(_key(hostname))
    except Exception:  # lapses by itself (FLAG_SECONDS)
        logger.warning("Could not clear worker %s's shutdown flag", hostname, exc_info=True)
