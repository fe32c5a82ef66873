"""The Celery app shared by the worker, beat and the web processes that enqueue work."""

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
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


class LongWorkerBeacon(bootsteps.StartStopStep):
    """Publishes, every TOUCH_INTERVAL seconds from a timer of the worker's event loop (beside the liveness
    heartbeat), a beacon per long queue it consumes (benchmarks, inference): alive, and how many of its slots
    hold work (apps.core.services.long_worker_beacon_record, in Django's cache: Redis, or the embedded mode's
    file cache; one entry per worker, so replicas do not overwrite each other's). A worker whose every slot
    holds long work takes no relayed heartbeat until one ends, and /readyz's long_worker check read that as
    gone; with a fresh beacon saying every slot is busy it reads ok.

    The write goes to one background thread, so a slow or unreachable Redis never holds up the loop (a write
    still in flight skips the next tick); errors are logged, never raised. Without an event loop (the
    filesystem broker of the embedded mode) the worker's timer thread drives it. The solo pool runs its task
    in the loop's thread, so the loop's timer stopped while it worked and a worker busy with a benchmark run
    read "gone": there a daemon thread of its own publishes the beacon, with the busy slot read from the
    worker's state. A solo worker whose loop is stuck with no task then says "alive with a free slot" and,
    taking no heartbeat, reads degraded; one stuck in its task reads "stuck?" past the longest long work.
    """

    requires = ("celery.worker.components:Hub",)
    stopping: threading.Event | None = None  # the solo pool's beacon thread runs until it is set

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry = None
        self.executor: ThreadPoolExecutor | None = None
        self.in_flight: Future | None = None

    def start(self, worker) -> None:
        from apps.core.selectors import long_queues

        consumed = set(worker.app.amqp.queues.consume_from)
        queues = [queue for queue in long_queues() if queue in consumed]
        if not queues:
            return
        if worker.use_eventloop and _runs_tasks_in_its_loop(worker):
            self.stopping = threading.Event()
            threading.Thread(
                target=_publish_until, args=(self.stopping, worker, queues), name="long-worker-beacon", daemon=True
            ).start()
            return
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-worker-beacon")
        timer = worker.hub if worker.use_eventloop else worker.timer
        self.timer_entry = timer.call_repeatedly(TOUCH_INTERVAL, partial(self.tick, worker, queues))

    def tick(self, worker, queues: list[str]) -> None:
        """Count the busy slots here (the loop's state), write from the background thread."""
        try:
            slots, busy, busy_since = _slots_state(worker)
            if self.executor is None or (self.in_flight is not None and not self.in_flight.done()):
                return
            self.in_flight = self.executor.submit(_publish_beacon, worker.hostname, queues, slots, busy, busy_since)
        except Exception:
            logger.warning("Could not publish the long worker's beacon", exc_info=True)

    def stop(self, worker) -> None:
        if self.stopping is not None:
            self.stopping.set()
            self.stopping = None
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None


def _publish_until(stopping: threading.Event, worker, queues: list[str]) -> None:
    """The solo pool's beacon thread: every TOUCH_INTERVAL seconds, whatever the loop's thread is doing."""
    while not stopping.wait(TOUCH_INTERVAL):
        try:
            _publish_beacon(worker.hostname, queues, *_slots_state(worker))
        except Exception:  # the worker's state read mid-change: the next one says it
            logger.warning("Could not publish the long worker's beacon", exc_info=True)


def _runs_tasks_in_its_loop(worker) -> bool:
    """Whether the worker's pool runs each task in the event loop's own thread (the solo pool)."""
    from celery.concurrency.solo import TaskPool as SoloPool

    pool_cls = getattr(worker, "pool_cls", None)
    return isinstance(pool_cls, type) and issubclass(pool_cls, SoloPool)


def _slots_state(worker) -> tuple[int, int, datetime | None]:
    """The worker's slots, how many hold a task, and when the last one filled (the newest of their tasks' starts)."""
    from celery.worker.state import active_requests

    pool = getattr(worker, "pool", None)
    slots = max(1, int(getattr(pool, "num_processes", None) or 1))
    active = list(active_requests)
    starts = [request.time_start for request in active if request.time_start]
    busy_since = None
    if len(active) >= slots:
        busy_since = datetime.fromtimestamp(max(starts) if starts else time.time(), UTC)
    return slots, len(active), busy_since


def _publish_beacon(hostname: str, queues: list[str], slots: int, busy: int, busy_since: datetime | None) -> None:
    from apps.core.services import long_worker_beacon_record

    try:
        long_worker_beacon_record(hostname=hostname, queues=queues, slots=slots, busy=busy, busy_since=busy_since)
    except Exception:  # Redis down or slow: the beacon goes stale, /readyz says so
        logger.warning("Could not publish the long worker's beacon for %s", ", ".join(queues), exc_info=True)


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
app.steps["worker"].add(LongWorkerBeacon)
app.add_defaults({"worker_consumer": f"{__name__}:HeartbeatConsumer"})  # lazily: settings load on first use
