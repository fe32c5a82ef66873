"""A load cancelled at its store step (after the loader, while L2/L3 are written): the single-flight lock is
either let go with the value stored, or let go at once; never left to another process's whole wait."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 30.0  # generous: each wait ends as soon as its condition holds


async def _until(condition, deadline: float = DEADLINE) -> bool:
    """Wait for `condition()` without holding the event loop; whether it held before the deadline."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline
    while not condition():
        if loop.time() >= ends:
            return False
        await asyncio.sleep(0.01)
    return True


def _block(stack, name: str) -> tuple[threading.Event, threading.Event]:
    """Make `stack.<name>` (a step of the store) wait in its thread until released: (entered, may_go_on)."""
    real = getattr(stack, name)
    entered, may_go_on = threading.Event(), threading.Event()

    def blocked(*args, **kwargs):
        entered.set()
        may_go_on.wait(60)
        return real(*args, **kwargs)

    setattr(stack, name, blocked)
    return entered, may_go_on


class _OtherProcess:
    """Another process's reader of the same key, in a thread: whether it loaded, and what it was given."""

    def __init__(self, namespace: str, parts: list, *, scope: str | None = None):
        self.stack = make_stack(single_flight_wait=120.0)  # a stuck lock would hold it far past any deadline
        self.loads: list[int] = []
        self.outcome: list = []
        self.waiting = threading.Event()
        real_wait = self.stack._wait_for_other_process

        def waiting(*args, **kwargs):
            self.waiting.set()
            return real_wait(*args, **kwargs)

        self.stack._wait_for_other_process = waiting

        def load():
            self.loads.append(1)
            return {"from": "other process"}

        def read():
            try:
                self.outcome.append(self.stack.get_or_load(namespace, parts, load, scope=scope))
            finally:
                connections.close_all()

        self.thread = threading.Thread(target=read, daemon=True)

    def done(self) -> bool:
        return bool(self.outcome)


# A new scope has no generation in Redis yet: the store sets it (`_redis_generation_set`), then writes L2.
@pytest.mark.parametrize("step", ["_l2_set", "_redis_generation_set"])
async def test_a_coroutine_cancelled_at_its_store_returns_at_once_and_the_value_is_stored_for_the_waiter(step):
    """The store runs on in its thread (it cannot be interrupted); the cancelled coroutine does not wait for it,
    and the store lets the lock go with its L2 write: the other process is given the value, loads nothing.
    Before: the coroutine's `finally` queued the lock's release behind the store on asgiref's one sync thread, so
    the cancelled request hung as long as the store did."""
    loader_stack = make_stack(single_flight_wait=120.0)
    namespace, parts, scope = "patient_data", ["cancelled-at-store", uuid.uuid4().hex], f"patient:{uuid.uuid4().hex}"
    entered, may_go_on = _block(loader_stack, step)
    policy = await sync_to_async(loader_stack.policy)(namespace)
    lock_name = loader_stack._l2_key("l", loader_stack.key(policy, parts))
    locks = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
    other = _OtherProcess(namespace, parts, scope=scope)

    async def load():
        return {"from": "loader"}

    task = asyncio.create_task(loader_stack.aget_or_load(namespace, parts, load, scope=scope))
    try:
        assert await _until(entered.is_set)
        assert locks.exists(lock_name)
        other.thread.start()
        assert await _until(other.waiting.is_set)
        task.cancel()
        finished, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in finished  # at once, while its store is still blocked in the thread
        assert task.cancelled()
        may_go_on.set()
        assert await _until(other.done)
    finally:
        may_go_on.set()
        other.thread.join(60)
        locks.close()
        await sync_to_async(connections.close_all)()
    assert other.outcome == [{"from": "loader"}]
    assert other.loads == []


async def test_a_coroutine_cancelled_before_its_store_began_lets_the_lock_go_at_once():
    """The store is queued behind other work on asgiref's sync thread when the request is cancelled: it is never
    made, and the lock is let go at once, so the other process's waiter loads at once rather than waiting for that
    thread (or, had the release been dropped, for its whole single-flight window). Before: the release was queued
    behind the same busy thread."""
    from asgiref.sync import SyncToAsync

    loader_stack = make_stack(single_flight_wait=120.0)
    namespace, parts = "ai_inference", ["cancelled-before-store", uuid.uuid4().hex]
    policy = await sync_to_async(loader_stack.policy)(namespace)
    lock_name = loader_stack._l2_key("l", loader_stack.key(policy, parts))
    locks = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
    other = _OtherProcess(namespace, parts)
    busy, may_go_on = threading.Event(), threading.Event()
    stores = []
    real_store = loader_stack.store

    def store(*args, **kwargs):
        stores.append(1)
        return real_store(*args, **kwargs)

    loader_stack.store = store

    def hold_the_sync_thread():
        busy.set()
        may_go_on.wait(60)

    queued = SyncToAsync.single_thread_executor._work_queue  # the store's place, behind the busy thread

    async def load():
        other.thread.start()
        assert await _until(other.waiting.is_set)
        holder = asyncio.create_task(sync_to_async(hold_the_sync_thread)())
        loads_done.append(holder)
        assert await _until(busy.is_set)
        return {"from": "loader"}

    loads_done: list[asyncio.Task] = []
    task = asyncio.create_task(loader_stack.aget_or_load(namespace, parts, load))
    try:
        assert await _until(lambda: bool(loads_done) and busy.is_set() and queued.qsize() > 0)
        assert locks.exists(lock_name)
        task.cancel()
        finished, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in finished
        assert task.cancelled()
        assert await _until(other.done)  # while the sync thread is still held
        assert not may_go_on.is_set()
    finally:
        may_go_on.set()
        other.thread.join(60)
        for holder in loads_done:
            await holder
        locks.close()
        await sync_to_async(connections.close_all)()
    assert other.loads == [1]  # the value was never stored: the waiter loaded it, at once
    assert other.outcome == [{"from": "other process"}]
    assert stores == []  # the cancelled coroutine's store was never made


def test_a_store_whose_l2_write_was_lost_lets_the_lock_go_before_its_l3_write():
    """The loader's L2 write did not land (Redis refused it): nothing will reach the waiters through L2, so the
    lock goes at once and they load, rather than waiting for the slower L3 write. Before: it was held until the
    whole store returned."""
    loader_stack = make_stack(single_flight_wait=120.0)
    namespace, parts = "ai_inference", ["l2-write-lost", uuid.uuid4().hex]
    loader_stack._l2_set = lambda *args, **kwargs: None  # the write is lost; the lock is still held
    entered, may_go_on = _block(loader_stack, "_l3_set")
    other = _OtherProcess(namespace, parts)
    outcome = []

    def read():
        try:
            outcome.append(loader_stack.get_or_load(namespace, parts, lambda: {"from": "loader"}))
        finally:
            connections.close_all()

    loading = threading.Thread(target=read, daemon=True)
    loading.start()
    try:
        assert entered.wait(DEADLINE)
        other.thread.start()
        other.thread.join(DEADLINE)
        assert other.done()  # while the L3 write is still blocked
        assert not may_go_on.is_set()
    finally:
        may_go_on.set()
        other.thread.join(60)
        loading.join(60)
    assert other.loads == [1]
    assert outcome == [{"from": "loader"}]


async def test_a_store_that_outlives_its_cancelled_coroutine_is_not_served_after_a_later_write():
    """The store goes on in its thread after its coroutine is cancelled, and lands after a write to the scope: it
    is stored under the generation read before the load, so no other process is given it after the write."""
    from django.db import transaction

    loader_stack, writer, reader = make_stack(single_flight_wait=120.0), make_stack(), make_stack()
    namespace, parts, scope = "patient_data", ["outlived", uuid.uuid4().hex], f"patient:{uuid.uuid4().hex}"

    def write():
        try:
            with transaction.atomic():
                writer.invalidate_scopes([scope])
        finally:
            connections.close_all()

    await sync_to_async(write, thread_sensitive=False)()  # the scope has a generation in Redis and the table
    entered, may_go_on = _block(loader_stack, "_l2_set")

    async def load():
        return {"value": "before the write"}

    task = asyncio.create_task(loader_stack.aget_or_load(namespace, parts, load, scope=scope))
    try:
        assert await _until(entered.is_set)
        task.cancel()
        finished, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in finished
        await sync_to_async(write, thread_sensitive=False)()  # committed while the store is still on its way
        may_go_on.set()
        assert await _until(lambda: _lock_free(loader_stack, namespace, parts))  # let go with its L2 write
        assert _in_l2(loader_stack, namespace, parts)  # the value loaded before the write is there, in L2

        def read():
            try:
                return reader.get_or_load(namespace, parts, lambda: {"value": "after the write"}, scope=scope)
            finally:
                connections.close_all()

        assert await sync_to_async(read, thread_sensitive=False)() == {"value": "after the write"}
    finally:
        may_go_on.set()
        await sync_to_async(connections.close_all)()


def _exists(stack, kind: str, namespace: str, parts: list) -> bool:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return bool(client.exists(stack._l2_key(kind, stack.key(stack._policies[namespace], parts))))
    finally:
        client.close()


def _lock_free(stack, namespace: str, parts: list) -> bool:
    """Whether the key's single-flight lock is let go (the store it was handed to has finished)."""
    return not _exists(stack, "l", namespace, parts)


def _in_l2(stack, namespace: str, parts: list) -> bool:
    return _exists(stack, "v", namespace, parts)


async def test_a_coroutine_cancelled_again_while_it_lets_go_of_its_lock_still_lets_it_go():
    """A request cancelled during its load, then again while its `finally` lets go of the lock (a task group
    tearing down, a timeout on top of a disconnect). Before: the release was queued on asgiref's sync thread,
    busy with other work, and the second cancellation dropped it: the lock stayed for the loader's whole lifetime
    (here 10 minutes) and every other process waited out its single-flight window before loading."""
    loader_stack = make_stack(single_flight_wait=120.0)
    namespace, parts = "ai_inference", ["cancelled-twice", uuid.uuid4().hex]
    await sync_to_async(loader_stack.policy)(namespace)
    busy, may_go_on, loading = threading.Event(), threading.Event(), asyncio.Event()

    def hold_the_sync_thread():
        busy.set()
        may_go_on.wait(60)

    async def load():
        loading.set()
        await asyncio.sleep(3600)  # cancelled long before

    task = asyncio.create_task(loader_stack.aget_or_load(namespace, parts, load))
    holder = None
    try:
        await asyncio.wait_for(loading.wait(), DEADLINE)
        assert not _lock_free(loader_stack, namespace, parts)
        holder = asyncio.create_task(sync_to_async(hold_the_sync_thread)())
        assert await _until(busy.is_set)
        task.cancel()
        await asyncio.sleep(0)  # into its `finally`, letting go of the lock
        await asyncio.sleep(0)
        task.cancel()
        finished, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in finished
        may_go_on.set()
        assert await _until(lambda: _lock_free(loader_stack, namespace, parts))
    finally:
        may_go_on.set()
        if holder is not None:
            await holder
        await sync_to_async(connections.close_all)()
