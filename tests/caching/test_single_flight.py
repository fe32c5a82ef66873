"""Single flight across processes: the Redis lock, and what a reader that took part in a flight is given."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone

from apps.caching.stack import cache_reads_reset, served_from_cache
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _store_from_another_process_after_lookup(reader, other, namespace: str, parts: list, value: dict) -> list:
    """Make `reader`'s next lookup miss, then have `other` (another process) load and store the key before
    `reader` goes on to take the single-flight lock: the lock is free again by then."""
    real_lookup, stored = reader.lookup, []

    def lookup_then_other_stores(*args, **kwargs):
        found = real_lookup(*args, **kwargs)
        if not stored:
            stored.append(other.get_or_load(namespace, parts, lambda: value))
        return found

    reader.lookup = lookup_then_other_stores
    return stored


def test_a_reader_that_missed_just_before_another_process_stored_is_served_that_value():
    reader, other = make_stack(), make_stack()
    parts = ["stored-meanwhile", uuid.uuid4().hex]
    stored = _store_from_another_process_after_lookup(reader, other, "ai_inference", parts, {"from": "other"})
    loads = []

    def load():
        loads.append(1)
        return {"from": "reader"}

    assert reader.get_or_load("ai_inference", parts, load) == {"from": "other"}
    assert stored == [{"from": "other"}]
    assert loads == []  # the lock was free, but the value was already there: no second load


async def test_a_coroutine_that_missed_just_before_another_process_stored_is_served_that_value():
    reader, other = make_stack(), make_stack()
    parts = ["stored-meanwhile-async", uuid.uuid4().hex]
    stored = _store_from_another_process_after_lookup(reader, other, "ai_inference", parts, {"from": "other"})
    loads = []

    async def load():
        loads.append(1)
        return {"from": "reader"}

    try:
        assert await reader.aget_or_load("ai_inference", parts, load) == {"from": "other"}
    finally:
        await sync_to_async(connections.close_all)()
    assert stored == [{"from": "other"}]
    assert loads == []


def test_a_reader_waiting_for_another_process_is_not_given_a_value_older_than_a_write_it_saw():
    """Another process began loading before a write that Redis has not heard of yet (its publish failed, the
    poll has not re-published it): the reader saw the write's generation in the database and must not be given
    that older value when it lands in L2; it loads the current one itself."""
    from apps.caching.models import CacheScopeGeneration

    # Neither polls during the test: a poll would re-publish the write to Redis (the backstop this is before).
    holder, reader = make_stack(poll_interval=3600), make_stack(poll_interval=3600, single_flight_wait=60.0)
    holder.tick(force=True)
    reader.tick(force=True)
    parts, scope = ["older", uuid.uuid4().hex], f"patient:{uuid.uuid4().hex}"
    holder_loading, reader_waiting = threading.Event(), threading.Event()
    outcomes = {}

    def holder_load():
        holder_loading.set()
        reader_waiting.wait(60)
        return {"value": "before the write"}

    real_wait = reader._wait_for_other_process

    def waiting(*args, **kwargs):
        reader_waiting.set()
        return real_wait(*args, **kwargs)

    reader._wait_for_other_process = waiting

    def hold():
        try:
            outcomes["holder"] = holder.get_or_load("patient_data", parts, holder_load, scope=scope)
        finally:
            connections.close_all()

    first = threading.Thread(target=hold)
    first.start()
    try:
        assert holder_loading.wait(30)
        # The write commits in the database; Redis is not told (the writer's publish failed).
        CacheScopeGeneration.objects.create(scope=reader.scope_key(scope), generation=10**15, updated_at=timezone.now())
        value = reader.get_or_load("patient_data", parts, lambda: {"value": "after the write"}, scope=scope)
    finally:
        reader_waiting.set()
        first.join(60)
    assert outcomes == {"holder": {"value": "before the write"}}
    assert value == {"value": "after the write"}


async def test_a_coroutine_served_the_load_another_coroutine_made_did_not_load():
    """The request that waited on another request's load in its event loop loaded nothing: it was counted as
    loaded (served_from_cache False), as if it had gone to the source itself."""
    stack = make_stack()
    parts = ["waiter", uuid.uuid4().hex]
    loading, may_finish = asyncio.Event(), asyncio.Event()
    loads = []

    async def load():
        loads.append(1)
        loading.set()
        await may_finish.wait()
        return {"v": 1}

    async def request() -> tuple[object, bool]:
        cache_reads_reset()
        value = await stack.aget_or_load("ai_inference", parts, load)
        return value, served_from_cache()

    waiting = asyncio.Event()

    class Flights(dict):
        """The stack's loads in flight; says when a reader has found the leader's (it awaits it from there on)."""

        def get(self, key, default=None):
            flight = super().get(key, default)
            if flight is not None:
                waiting.set()
            return flight

    stack._async_flights = Flights()
    try:
        leader = asyncio.create_task(request())
        await asyncio.wait_for(loading.wait(), 30)
        waiter = asyncio.create_task(request())
        await asyncio.wait_for(waiting.wait(), 30)
        may_finish.set()
        assert await leader == ({"v": 1}, False)
        assert await waiter == ({"v": 1}, True)
    finally:
        may_finish.set()
        await sync_to_async(connections.close_all)()
    assert loads == [1]


async def test_a_coroutine_cancelled_while_taking_the_lock_lets_it_go():
    """The lock is taken in a thread: a coroutine cancelled meanwhile (its client went away) never got it back,
    and every other process waited the lock's whole lifetime (here 10 minutes) before loading the key."""
    stack = make_stack(single_flight_wait=120.0)
    policy = await sync_to_async(stack.policy)("ai_inference")
    parts = ["cancelled", uuid.uuid4().hex]
    lock_name = stack._l2_key("l", stack.key(policy, parts))
    taken, may_return = threading.Event(), threading.Event()
    real = stack._lock_or_stored

    def taking(*args, **kwargs):
        outcome = real(*args, **kwargs)
        taken.set()
        may_return.wait(60)
        return outcome

    stack._lock_or_stored = taking
    locks = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)  # not on asgiref's thread, which is held

    async def load():
        return {"v": 1}

    task = asyncio.create_task(stack.aget_or_load("ai_inference", parts, load))
    try:
        for _ in range(3000):
            if taken.is_set():
                break
            await asyncio.sleep(0.01)
        assert taken.is_set()
        assert locks.exists(lock_name)  # taken, in the thread
        task.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the coroutine while the thread still holds its answer
    finally:
        may_return.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    try:
        for _ in range(3000):  # let go at once; the code before this fix held it for loader_lifetime (600 s)
            if not locks.exists(lock_name):
                break
            await asyncio.sleep(0.01)
        assert not locks.exists(lock_name)
    finally:
        locks.close()
        await sync_to_async(connections.close_all)()
