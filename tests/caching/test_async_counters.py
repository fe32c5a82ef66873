"""A coroutine's read is one request in the counters the hit rate is worked out from, however it was served."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

pytestmark = pytest.mark.django_db(transaction=True)


async def _until(condition, what: str) -> None:
    """Poll the loop until `condition()` holds (a deadline, not a timing assumption)."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_coroutine_that_waited_for_a_cancelled_load_is_one_request(stack):
    """Its own read goes round again once the load it waited for is cancelled. Before: going round counted it as
    a second request, so the namespace's hit rate (1 - loads / requests) showed hits that never happened."""
    namespace, parts = "ai_inference", ["cancelled-load-counted", 1]
    first_load_running, never = asyncio.Event(), asyncio.Event()
    loads = []

    async def loader():
        loads.append(1)
        if len(loads) == 1:
            first_load_running.set()
            await never.wait()  # the leader's load hangs until its request is cancelled
        return {"v": 1}

    try:
        leader = asyncio.create_task(stack.aget_or_load(namespace, parts, loader))
        await first_load_running.wait()
        waiter = asyncio.create_task(stack.aget_or_load(namespace, parts, loader))
        (future,) = list(stack._async_flights.values())
        await _until(lambda: len(future._callbacks or ()) > 0, "the waiter to wait on the leader's load")
        leader.cancel()
        assert await waiter == {"v": 1}
        with pytest.raises(asyncio.CancelledError):
            await leader
        counters = stack.stats()[(namespace, "source")]
        assert counters["loads"] == 2  # the cancelled load and the waiter's own
        assert counters["requests"] == 2  # two reads
    finally:
        await sync_to_async(connections.close_all)()
