"""Single flight across processes: the Redis lock, and what a reader that took part in a flight is given."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.caching.conftest import make_stack

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
