"""The per-process latency recorder: an HDR histogram per (minute, route, method, status class, client).

Recording costs about 2 µs and takes no lock a request waits on for long; every few seconds one
request's thread hands the accumulated histograms to `services.rollups_merge`.

A request is stamped with this host's clock when it happens; its minute is taken on the database's clock,
the one every host shares: each flush reads the database's clock once and moves the batch's stamps by the
difference. A host whose clock ran 30 s or more off wrote its requests into another minute, where the p95 read
by the adaptive limiter and the alerts ("the latest minutes") missed them or found them late.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError
from hdrh.histogram import HdrHistogram

logger = logging.getLogger(__name__)

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 120_000_000, 2


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def percentile_values(histogram: HdrHistogram, percentiles: Iterable[float]) -> dict[float, int]:
    """hdrh's `get_value_at_percentile` for several percentiles at once, the same values (a test compares),
    from one cumulative sum of the counts in numpy: hdrh walks its 2,688 buckets in Python for each
    percentile, about 130 us, which a day of one-minute p95 points and every rollup flush paid (its own
    one-pass `get_percentile_to_value_dict` still walks them in Python: ~130 us for all three)."""
    import numpy as np  # here, not at import: every web process loads this module with the middleware

    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    cumulative = np.cumsum(counts, dtype=np.int64)
    values = {}
    for percentile in percentiles:
        index = int(np.searchsorted(cumulative, histogram.get_target_count_at_percentile(percentile), side="left"))
        if index >= histogram.counts_len:  # an empty histogram
            values[percentile] = 0
            continue
        value = histogram.get_value_from_index(index)
        equivalent = histogram.get_highest_equivalent_value if percentile else histogram.get_lowest_equivalent_value
        values[percentile] = equivalent(value)
    return values


@dataclass
class Series:
    histogram: HdrHistogram = field(default_factory=new_histogram)
    count: int = 0
    errors: int = 0
    total_us: int = 0


# A clock read slower than this says little of when the database's clock was read (see _measure_clock_offset).
MAX_CLOCK_ROUND_TRIP_SECONDS = 1.0


class Recorder:
    """A request appends three integers to an array under a lock held for that append alone; every few
    seconds the flush folds the batch into HDR histograms in one tight loop.

    Nothing per request outlives the request as a Python object: thousands of retained tuples would
    be promoted to the GC's oldest generation and set off full collections that stall every thread
    (measured: whole seconds at half throughput). Series keys are interned as small integers.
    """

    MAX_PENDING = 600_000  # three integers a request: a flush that keeps failing must not grow memory forever
    MAX_UNSAVED = 5_000  # series (one HDR histogram each) kept while the database refuses them

    def __init__(self, flush_interval: float = 5.0, *, background: bool = True, exit_timeout: float = 3.0):
        self.flush_interval = flush_interval
        self.background = background
        self._records = array("q")
        self._key_ids: dict[tuple, int] = {}
        self._keys: list[tuple] = []
        self._unsaved: dict[tuple, Series] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flushed_at = time.monotonic()
        self._flusher: threading.Thread | None = None
        self.exit_timeout = exit_timeout
        # The database's clock minus this host's, in ms, as last measured (by each flush that has requests to
        # fold); None until the database first answers, and until then nothing is folded (see flush).
        self._clock_offset_ms: int | None = None

    def _ensure_flusher(self) -> None:
        """A daemon thread flushes what a burst left behind when no request follows it (a thread of
        this process: after a fork the child starts its own)."""
        flusher = self._flusher
        if flusher is None or not flusher.is_alive():
            with self._lock:
                if self._flusher is None or not self._flusher.is_alive():
                    self._flusher = threading.Thread(target=self._flush_idle, name="metrics-flush", daemon=True)
                    self._flusher.start()

    def flush_at_exit(self, timeout: float | None = None) -> None:
        """The daemon flusher dies with the process: a worker's restart (max_requests, a deploy, a scale-down)
        lost the timings of its last seconds, the requests that were slow or failing among them. Not where
        the process flushes its own (`background` off: the test process).

        Bounded (`exit_timeout` seconds): the flush runs in a thread of its own, given up once the time is out.
        Against a hung database (a connection that stopped answering, a lock held, a pool with nothing to
        lend) the exit waited for libpq and the pool: 11-16 s per gunicorn worker, ~15 s for uvicorn and the
        Celery worker, past their supervisors' grace. What is not written is logged, never silently lost."""
        if not self.background:
            return
        timeout = self.exit_timeout if timeout is None else timeout
        pending = self.pending_requests()
        if not pending:
            return  # nothing to write: the database is not touched
        done = threading.Event()

        def write() -> None:
            try:
                self.flush()
            except Exception:  # an exit must not fail for metrics
                logger.warning("request timings could not be written at exit", exc_info=True)
            finally:
                done.set()
                _close_thread_connections()

        try:
            threading.Thread(target=write, name="metrics-exit-flush", daemon=True).start()
        except RuntimeError:  # no thread can start any more (the interpreter is finalizing)
            logger.warning("request timings not written at exit (no thread to write them): %d requests dropped",
                           pending)  # fmt: skip
            return
        if not done.wait(timeout):
            logger.warning(
                "request timings not written at exit: the database did not answer within %.1f s; %d requests dropped",
                timeout,
                pending,
            )
            return
        left = self.pending_requests()
        if left:  # the database refused them (or its breaker is open): there is no next flush
            logger.warning("request timings not written at exit: %d requests dropped", left)

    def pending_requests(self) -> int:
        """Requests recorded and not written yet: those not flushed and those a failed flush kept."""
        with self._lock:
            return len(self._records) // 3 + sum(series.count for series in list(self._unsaved.values()))

    def _flush_idle(self) -> None:
        from apps.resources.pools import pool_usage_publish

        while True:
            time.sleep(self.flush_interval)
            if self._records and time.monotonic() - self._flushed_at >= self.flush_interval:
                try:
                    self.flush(block=False)
                finally:
                    # This thread's connection back to the pool after each flush: kept, it held a pooled
                    # connection for the life of the process (a slot of each process's pool: with
                    # DB_POOL_MAX_SIZE=1 every request then answered 503), and the pool use published below
                    # never read under 1/max. Handed back before that figure is read.
                    _close_thread_connections()
            # This process's pool and its pod's CPU and memory, for the resource monitor (a Celery worker
            # elsewhere, which never sees this pod otherwise); off the request path.
            try:
                pool_usage_publish()
            except Exception:  # never let it stop the flushes
                logger.debug("pool use not published", exc_info=True)
            finally:
                _close_thread_connections()

    def record(self, *, route: str, method: str, status: int, client: str, elapsed_us: int) -> None:
        if self.background and (self._flusher is None or not self._flusher.is_alive()):
            self._ensure_flusher()
        key = (route, method, status, client)
        key_id = self._key_ids.get(key)
        at_ms = int(time.time() * 1000)  # this host's clock; the flush moves it onto the database's
        with self._lock:
            if key_id is None:
                key_id = self._key_ids.get(key)
                if key_id is None:
                    key_id = self._key_ids[key] = len(self._keys)
                    self._keys.append(key)
            self._records.extend((key_id, at_ms, elapsed_us))
        # With the background flusher, a due flush is its job, not the request's: a request thread that flushed
        # waited on the database for the clock read and the write, and with PostgreSQL down for the pool's
        # timeout (DB_POOL_TIMEOUT, 10 s): a fresh server's first /readyz and /healthz took 12 s. Only a batch
        # past MAX_PENDING (a flusher that cannot keep up) is still flushed here.
        due = not self.background and time.monotonic() - self._flushed_at >= self.flush_interval
        if due or len(self._records) > self.MAX_PENDING:
            self.flush(block=False)

    def _keep_unfolded(self, taken: array) -> None:
        """Put a batch back before what was recorded since; bounded (MAX_PENDING): the oldest requests go first."""
        with self._lock:
            kept = taken + self._records
            dropped = max(len(kept) - self.MAX_PENDING // 2, 0) if len(kept) > self.MAX_PENDING else 0
            self._records = kept[dropped:] if dropped else kept
        if dropped:
            logger.warning("request timings dropped: the database's clock is not known yet; %d requests", dropped // 3)

    def _keep_unsaved(self, series: dict) -> None:
        # Bounded: while the database is away, the oldest minutes go first.
        self._unsaved = dict(sorted(series.items(), key=lambda kv: kv[0][0])[-self.MAX_UNSAVED :])

    def discard(self) -> None:
        """Drop what is recorded and not written yet (a test's requests must not leak into the next)."""
        with self._lock:
            self._records = array("q")
            self._unsaved = {}

    def flush(self, *, block: bool = True) -> int:
        """Fold what was recorded into series, export them to Prometheus, merge them into the rollups
        (kept for the next flush if the database refuses); the number of series written (by this flush: a
        failure midway counts those written before it)."""
        if not self._flush_lock.acquire(blocking=block):
            return 0
        try:
            with self._lock:
                taken, self._records = self._records, array("q")
                keys = list(self._keys)
            self._flushed_at = time.monotonic()
            if not taken and not self._unsaved:
                return 0  # nothing to write: the database is not touched
            from apps.core.breaker import metrics_database_breaker
            from apps.metrics.services import rollups_merge

            # Read once here, not again before the write: a due probe is started by the first call alone.
            database_up = metrics_database_breaker.available()
            if taken and database_up:
                database_up = self._measure_clock_offset()
            if taken and self._clock_offset_ms is None:
                # No offset measured yet (the database has not answered since this process started): folded now,
                # the batch took this host's clock for the database's (an offset of 0) and kept those minutes
                # for good, an hour off on a host an hour off. Kept as recorded, folded once an offset is read.
                self._keep_unfolded(taken)
                taken = array("q")
            try:
                fresh = _fold(taken, keys, self._clock_offset_ms or 0)
            except Exception:  # metrics never fail the request whose thread happens to flush
                logger.warning("request timings could not be folded; %d dropped", len(taken) // 3, exc_info=True)
                return 0
            try:
                _export(fresh)
            except Exception:  # its files unwritable (a full disk): the rollups are still written
                logger.warning("request timings could not be exported to Prometheus", exc_info=True)
            series, self._unsaved = self._unsaved, {}
            for key, data in fresh.items():
                _add(series.setdefault(key, Series()), data)
            if not series:
                return 0
            if not database_up:  # failed a moment ago: no request thread waits for it
                self._keep_unsaved(series)
                return 0
            # Counted before: rollups_merge takes each series out of `series` as it writes its row.
            batch = len(series)
            try:
                rollups_merge(series)
            except Exception as exc:
                if isinstance(exc, DatabaseError):
                    metrics_database_breaker.failure()
                logger.warning("request rollups could not be written; kept for the next flush", exc_info=True)
                self._keep_unsaved(series)
                return batch - len(series)  # those written before it failed
            return batch
        finally:
            self._flush_lock.release()

    def _measure_clock_offset(self) -> bool:
        """The database's clock against this host's, one query a flush: its reading set against the middle of
        this host's two readings around the query. False when the database did not answer: the batch is folded
        with the last offset measured and kept for the next flush, as a refused write is; with none measured yet
        it is kept unfolded (flush)."""
        from django.db import connections

        from apps.core.breaker import metrics_database_breaker
        from apps.resources.selectors import database_now

        try:
            # The connection taken from the pool first, outside the timed span: a wait for one (the pool busy)
            # was counted as half the round trip and moved the offset by half of it.
            connections["default"].ensure_connection()
            before = time.time()
            database = database_now().timestamp()
            after = time.time()
        except Exception as exc:  # metrics never fail the request whose thread happens to flush
            if isinstance(exc, DatabaseError):
                metrics_database_breaker.failure()
            logger.warning("the database's clock could not be read; request timings kept for the next flush",
                           exc_info=True)  # fmt: skip
            return False
        # A round trip slower than a second (a stalled server) says little of when the clock was read: the last
        # offset, measured over a quicker one, stands.
        if after - before <= MAX_CLOCK_ROUND_TRIP_SECONDS or self._clock_offset_ms is None:
            self._clock_offset_ms = round((database - (before + after) / 2) * 1000)
        return True


def _close_thread_connections() -> None:
    """The background and exit flushes' threads have connections of their own: handed back (to the pool) once
    a round is done, never left open."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # an exit must not fail for metrics
        logger.debug("the flush thread's connections could not be closed", exc_info=True)


# Refusals answered in a few ms without the work a request asks for, each in a class of its own (a bounded label):
# the limiter's 429s, counted per route; the 503s of a service shedding load (a full slot, a fail-closed limiter),
# which folded into "5xx" read as its fastest requests to the adaptive controller's p95 while it was overloaded.
OWN_CLASSES = frozenset({429, 503})


def status_class(status: int) -> str:
    """ "2xx", "4xx", ...; a 429 and a 503 keep their own classes (OWN_CLASSES)."""
    return str(status) if status in OWN_CLASSES else f"{status // 100}xx"


def _fold(records: array, keys: list[tuple], clock_offset_ms: int = 0) -> dict[tuple, Series]:
    """The records as series keyed by their minute on the database's clock (this host's stamp plus the offset)."""
    folded: dict[tuple, Series] = {}
    for index in range(0, len(records), 3):
        key_id, at_ms, elapsed_us = records[index], records[index + 1], records[index + 2]
        route, method, status, client = keys[key_id]
        series_key = ((at_ms + clock_offset_ms) // 60_000 * 60, route, method, status_class(status), client)
        series = folded.get(series_key)
        if series is None:
            series = folded[series_key] = Series()
        series.histogram.record_value(min(max(elapsed_us, LOWEST_US), HIGHEST_US))
        series.count += 1
        series.total_us += elapsed_us
        if status >= 500:
            series.errors += 1
    return folded


def _add(target: Series, source: Series) -> None:
    target.histogram.add(source.histogram)
    target.count += source.count
    target.errors += source.errors
    target.total_us += source.total_us


def _export(series: dict[tuple, Series]) -> None:
    """This process's Prometheus histograms, once per flushed series (never again on a retry)."""
    from apps.metrics.prometheus import request_histogram_add

    for (_, route, method, status_class, _), data in series.items():
        request_histogram_add(route=route, method=method, status_class=status_class, histogram=data.histogram,
                              total_seconds=data.total_us / 1e6)  # fmt: skip


recorder = Recorder(
    flush_interval=settings.METRICS_FLUSH_SECONDS,
    background=settings.METRICS_BACKGROUND_FLUSH,
    exit_timeout=settings.METRICS_EXIT_FLUSH_SECONDS,
)
atexit.register(recorder.flush_at_exit)  # a forked worker inherits it
