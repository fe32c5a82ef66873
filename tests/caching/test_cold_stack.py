"""A cold cache stack (one that has not polled yet) asks Redis rather than taking it for away."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connections

from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cold_stack_asks_redis_for_the_lock_while_its_first_poll_runs_in_another_thread():
    """A stack that has not polled yet does not know the Redis server's run id: a read that skipped the poll
    (another thread's first poll running) took Redis for away and loaded past the lock another process held
    (four event loops of a cold stack: four loads instead of one)."""
    holder, cold = make_stack(), make_stack(single_flight_wait=60.0)
    parts = ["cold", uuid.uuid4().hex]
    holder_loading, holder_may_finish, cold_waiting = threading.Event(), threading.Event(), threading.Event()
    loads, outcomes = [], {}

    def holder_load():
        holder_loading.set()
        holder_may_finish.wait(60)
        return {"from": "holder"}

    def cold_load():
        loads.append(1)
        cold_waiting.set()  # the code before this fix: loaded at once, Redis taken for away
        return {"from": "cold"}

    real_wait = cold._wait_for_other_process

    def waiting(*args, **kwargs):
        cold_waiting.set()
        return real_wait(*args, **kwargs)

    cold._wait_for_other_process = waiting

    def run(name, call):
        try:
            outcomes[name] = call()
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcomes[name] = exc
        finally:
            connections.close_all()

    first = threading.Thread(
        target=run, args=("holder", lambda: holder.get_or_load("ai_inference", parts, holder_load))
    )
    first.start()
    second = None
    try:
        assert holder_loading.wait(30)
        cold._tick_lock.acquire()  # its first poll, in another thread, has not finished
        try:
            second = threading.Thread(
                target=run, args=("cold", lambda: cold.get_or_load("ai_inference", parts, cold_load))
            )
            second.start()
            assert cold_waiting.wait(30)
        finally:
            cold._tick_lock.release()
    finally:
        holder_may_finish.set()
        first.join(60)
        if second is not None:
            second.join(90)
    assert outcomes == {"holder": {"from": "holder"}, "cold": {"from": "holder"}}
    assert loads == []
