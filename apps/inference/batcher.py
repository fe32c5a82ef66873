"""Dynamic batching in the serving process: requests wait briefly in an asyncio queue, are grouped up
to a batch size or a delay, sorted by length so padding stays small, run together in a worker thread,
and each caller gets its own result. A controller moves the batch size and delay to keep p95 inside
the SLO while taking the biggest batches that do.

WSGI threads (gunicorn) reach the batcher through `EventLoopThread.call`; async callers await
`DynamicBatcher.submit` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class BatchController:
    """Batch size and queue delay steered by the p95 of recent requests against the SLO.

    A request's latency is its wait in the queue plus its batch's run. Over the SLO, the cause decides:
    when a batch's own run takes more than `headroom` of the SLO, batches are too big for it (halve the
    size and the delay); when the run is short and the wait is long, the batcher is behind its queue,
    and a smaller batch would only lower throughput (the spiral an AIMD on latency alone falls into), so
    it takes bigger batches without waiting. Comfortably under the SLO while batches fill: one more per
    batch, the delay back toward its maximum. Every change is kept in `changes`.
    """

    slo_ms: float
    max_batch_size: int
    max_delay_ms: float
    batch_size: int = 0
    delay_ms: float = -1.0
    window: int = 64
    headroom: float = 0.7
    latencies: deque = field(default_factory=deque)
    run_ms: float = 0.0
    changes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.batch_size = self.batch_size or self.max_batch_size
        self.delay_ms = self.max_delay_ms if self.delay_ms < 0 else self.delay_ms

    def retune(self, *, slo_ms: float, max_batch_size: int, max_delay_ms: float) -> None:
        """New bounds from the admin (the model and its queue stay): the current setting is brought inside
        them and judged afresh."""
        self.slo_ms, self.max_batch_size, self.max_delay_ms = slo_ms, max_batch_size, max_delay_ms
        self.batch_size = min(self.batch_size, max_batch_size)
        self.delay_ms = min(self.delay_ms, max_delay_ms)
        self.latencies.clear()

    def p95_ms(self) -> float | None:
        if len(self.latencies) < 8:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def observe(self, latencies_ms: Sequence[float], batch_filled: bool, run_ms: float = 0.0) -> None:
        self.latencies.extend(latencies_ms)
        while len(self.latencies) > self.window:
            self.latencies.popleft()
        self.run_ms = max(run_ms, 0.8 * self.run_ms)  # the slowest recent batch run, decaying
        p95 = self.p95_ms()
        if p95 is None:
            return
        size, delay, reason = self.batch_size, self.delay_ms, ""
        if p95 > self.slo_ms and self.run_ms > self.headroom * self.slo_ms:
            size, delay, reason = max(1, size // 2), delay / 2, "a batch's run takes most of the SLO"
        elif p95 > self.slo_ms:
            size, delay, reason = min(self.max_batch_size, size * 2), 0.0, "behind the queue: bigger batches, no wait"
        elif p95 < self.headroom * self.slo_ms and batch_filled:
            size, delay = min(self.max_batch_size, size + 1), min(self.max_delay_ms, max(delay * 2, 0.5))
            reason = "room under the SLO"
        if (size, delay) != (self.batch_size, self.delay_ms):
            change = {"at": time.time(), "p95_ms": round(p95, 2), "run_ms": round(self.run_ms, 2), "reason": reason}
            self.changes.append({**change, "batch_size": size, "delay_ms": round(delay, 3),
                                 "was": [self.batch_size, round(self.delay_ms, 3)]})  # fmt: skip
            self.changes = self.changes[-100:]
            self.batch_size, self.delay_ms = size, delay
            self.latencies.clear()  # judge the new setting on its own requests


@dataclass
class _Pending:
    item: Any
    length: int
    future: asyncio.Future
    enqueued: float


class DynamicBatcher:
    """`run_batch(items) -> results` (same order) is called in a thread with up to the controller's batch
    size of items; `length(item)` sorts a batch so similar lengths are padded together.

    `group(item)`, when given, splits what was gathered into runs of one group each, the smallest key first:
    a generation batch runs until its longest request's max_new_tokens, so a request for 8 tokens batched
    with one for 512 waited for all 512; grouped by a bucket of max_new_tokens, it waits for its own bucket's
    run (the shorter groups first, so a long group waits for the shorter groups' runs before it). The controller
    judges whether the gathered batch was full, not each group: with mixed caps a group rarely fills one, and
    the batch size, once cut, never grew back."""

    def __init__(self, run_batch: Callable[..., list[Any]], controller: BatchController,
                 *, length: Callable[[Any], int] = len,
                 group: Callable[[Any], int] | None = None, stoppable: bool = False):  # fmt: skip
        self.run_batch, self.controller, self.length, self.group = run_batch, controller, length, group
        # run_batch(items, abandoned) then: `abandoned` (a threading.Event) is set once every caller of the
        # batch has given up, so a long run (a generation's hundreds of tokens) stops rather than going on
        # for no one.
        self.stoppable = stoppable
        self.queue: asyncio.Queue[_Pending | None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker: asyncio.Task | None = None
        self.closed = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self.queue is None:
            self.queue, self.loop = asyncio.Queue(), loop
        if self.worker is None or self.worker.done():  # first call, or a closed batcher reached late
            self.worker = loop.create_task(self._serve())
        future = loop.create_future()
        await self.queue.put(_Pending(item, self.length(item), future, time.perf_counter()))
        return await future

    def close(self) -> None:
        """From any thread: answer what is queued, then stop serving (a replaced deployment's batcher). Its
        task would otherwise wait on its queue for ever, holding the old model's weights until the garbage
        collector destroyed it pending (an error in the log at each replacement)."""
        self.closed = True
        if self.loop is not None and self.queue is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing is waiting there
                self.loop.call_soon_threadsafe(self.queue.put_nowait, None)  # wakes an idle worker

    async def _serve(self) -> None:
        assert self.queue is not None
        while not (self.closed and self.queue.empty()):
            first = await self.queue.get()
            if first is None:
                continue
            batch = [first]
            deadline = time.perf_counter() + self.controller.delay_ms / 1000
            while len(batch) < self.controller.batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
                if pending is None:  # closing: what is here runs now
                    break
                batch.append(pending)
            while len(batch) < self.controller.batch_size and not self.queue.empty():
                if (pending := self.queue.get_nowait()) is not None:
                    batch.append(pending)
            try:
                await self._run(batch)
            except Exception as error:  # one batch's surprise must not stop serving
                # Before, the worker task ended here and every later caller waited out its timeout (503s
                # until the process restarted).
                logger.exception("an inference batch failed outside its model run; serving goes on")
                for pending in batch:
                    _settle(pending, error=error)

    async def _isolate(self, failed: list[_Pending], error: Exception, *, budget: list[int]) -> None:
        """One input can be what fails its batch: run the halves again, and theirs, so only the failing
        input's caller gets the error (about 2·log2(n) more runs for one bad input of n, not n). A batch
        that fails whatever it holds (the model itself broken) spends the run budget and its callers get
        the error, rather than every queued caller waiting out n runs of a broken model."""
        failed = [pending for pending in failed if not pending.future.done()]
        if len(failed) <= 1:
            for pending in failed:
                _settle(pending, error=error)
            return
        middle = len(failed) // 2
        for half in (failed[:middle], failed[middle:]):
            if budget[0] <= 0:
                for pending in half:
                    _settle(pending, error=error)
                continue
            budget[0] -= 1
            try:
                results = await self._compute(half)
            except Exception as half_error:  # noqa: BLE001 - narrowed down below
                await self._isolate(half, half_error, budget=budget)
            else:
                for pending, result in zip(half, results, strict=True):
                    _settle(pending, result=result)

    async def _compute(self, batch: list[_Pending]) -> list[Any]:
        items = [pending.item for pending in batch]
        if not self.stoppable:
            return await asyncio.to_thread(self._answers, items)
        return await asyncio.to_thread(self._answers, items, _abandonment(batch))

    def _answers(self, items: list[Any], abandoned: threading.Event | None = None) -> list[Any]:
        results = self.run_batch(items) if abandoned is None else self.run_batch(items, abandoned)
        if len(results) != len(items):
            raise RuntimeError(f"the model answered {len(results)} of {len(items)} inputs")
        return results

    async def _run(self, batch: list[_Pending]) -> None:
        filled = len(batch) >= self.controller.batch_size
        if self.group is None:
            await self._run_group(batch, filled=filled)
            return
        groups: dict[int, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(self.group(pending.item), []).append(pending)
        for key in sorted(groups):
            await self._run_group(groups[key], filled=filled)

    async def _run_group(self, batch: list[_Pending], *, filled: bool) -> None:
        # A caller that gave up (its wait timed out, its client left) cancelled its future: not computed.
        ordered = sorted((p for p in batch if not p.future.done()), key=lambda pending: pending.length)
        if not ordered:
            return
        started = time.perf_counter()
        try:
            results = await self._compute(ordered)
        except Exception as error:  # noqa: BLE001 - reported to the callers below; serving goes on
            await self._isolate(ordered, error, budget=[4 * math.ceil(math.log2(len(ordered))) + 2])
            return
        finished = time.perf_counter()
        for pending, result in zip(ordered, results, strict=True):
            _settle(pending, result=result)
        self.batches += 1
        self.items += len(ordered)
        self.controller.observe([(finished - p.enqueued) * 1000 for p in ordered],
                                batch_filled=filled,
                                run_ms=(finished - started) * 1000)  # fmt: skip


def _abandonment(batch: list[_Pending]) -> threading.Event:
    """An event, read by the batch's thread, set once every caller of `batch` has given up (cancelled its
    future: its wait timed out, its client left). Called in the loop, where the futures' callbacks run."""
    abandoned, waiting = threading.Event(), [len(batch)]

    def left(future: asyncio.Future) -> None:
        if future.cancelled():
            waiting[0] -= 1
            if not waiting[0]:
                abandoned.set()

    for pending in batch:
        pending.future.add_done_callback(left)
    return abandoned


def _settle(pending: _Pending, *, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a caller that is still waiting (one that gave up has a cancelled future)."""
    if pending.future.done():
        return
    if error is not None:
        pending.future.set_exception(error)
    else:
        pending.future.set_result(result)


# How often a thread waiting on the loop asks whether its client is still there (a non-blocking peek: cheap).
GONE_POLL_SECONDS = 0.25


class CallerGone(Exception):
    """The client of a call waiting on the loop left before its answer; what the call queued is cancelled."""


class EventLoopThread:
    """One asyncio loop in a daemon thread, for callers that are threads (WSGI): `call` runs a coroutine
    there and waits for its result."""

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        import os

        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts its own
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(target=self._loop.run_forever, name="inference-batcher", daemon=True).start()
            return self._loop

    def call(self, coroutine, timeout: float | None = None, gone: Callable[[], bool] | None = None) -> Any:
        """The coroutine's result; past `timeout` it is cancelled (what it queued is not computed) and
        TimeoutError raised. `gone`, asked every GONE_POLL_SECONDS while waiting, tells that the caller's
        client left: the coroutine is cancelled as on a timeout (a batch all of whose callers left stops at its
        next token) and CallerGone raised."""
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop())
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                if gone is not None:
                    wait = GONE_POLL_SECONDS if wait is None else min(wait, GONE_POLL_SECONDS)
                try:
                    return future.result(wait)
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    if gone is not None and gone():
                        raise CallerGone("the caller's client left") from None
        except (TimeoutError, CallerGone):
            future.cancel()
            raise
