"""The Celery app shared by the worker, beat and the web processes that enqueue work."""

import logging
import os
from collections.abc import Callable
from pathlib import Path

from celery import Celery, bootsteps
from celery.worker.consumer import Consumer
from kombu import Connection

from apps.core.liveness import TOUCH_INTERVAL, heartbeat_path, touch_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

logger = logging.getLogger(__name__)

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class LivenessHeartbeat(bootsteps.StartStopStep):
    """Touches the worker's heartbeat file from a timer of the worker's event loop (its hub), for the
    liveness probe (`python -m apps.core.liveness worker`).

    The timer fires only while the loop turns, so a stuck main loop lets the file go stale; a thread
    would keep touching it. A worker-level entry, added before the consumer connects, survives the
    consumer's reconnects (Celery cancels only the entries added for a connection).
    """

    requires = ("celery.worker.components:Hub",)

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        worker.liveness_heartbeat = None
        self.timer_entry = None

    def include_if(self, worker) -> bool:
        if not worker.use_eventloop:
            # The filesystem broker of a local checkout: no event loop to drive the heartbeat.
            logger.info("No liveness heartbeat: the broker transport runs without an event loop")
        return worker.use_eventloop

    def start(self, worker) -> None:
        path = heartbeat_path("worker")
        worker.liveness_heartbeat = path
        touch_heartbeat(path)
        self.timer_entry = worker.hub.call_repeatedly(TOUCH_INTERVAL, touch_heartbeat, path)

    def stop(self, worker) -> None:
        # The file stays: a warm shutdown still finishing its tasks must not be restarted as dead.
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


class HeartbeatConsumer(Consumer):
    """The consumer, touching the heartbeat while it retries the broker.

    Reconnecting runs in the main thread outside the event loop (kombu's retry loop), so the loop's timer
    is silent for the whole broker outage. The retry loop calls back every second; that callback touches
    the file too: a worker waiting for its broker is alive, and restarting it would only kill its tasks.
    """

    def ensure_connected(self, conn: Connection) -> Connection:
        path = getattr(self.controller, "liveness_heartbeat", None)
        if path is not None:
            conn.ensure_connection = _touching_while_retrying(conn.ensure_connection, path)
        return super().ensure_connected(conn)


def _touching_while_retrying(ensure_connection: Callable, path: Path) -> Callable:
    """kombu's ensure_connection, touching the heartbeat each time its retry loop calls back."""

    def ensure_connection_touching(*args, callback: Callable | None = None, **kwargs):
        def each_retry_second() -> None:
            touch_heartbeat(path)
            if callback is not None:
                callback()

        return ensure_connection(*args, callback=each_retry_second, **kwargs)

    return ensure_connection_touching


app.steps["worker"].add(LivenessHeartbeat)
app.add_defaults({"worker_consumer": f"{__name__}:HeartbeatConsumer"})  # lazily: settings load on first use
