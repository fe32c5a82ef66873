"""`ttl=` on direct reads: a clear ValueError before anything is loaded, never a silently different lifetime."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)

BAD_TTLS = [0, -30, 1.5, "60", True, [60], 10**12, float("inf"), float("nan")]


def test_a_bad_ttl_on_a_direct_read_is_refused_before_loading():
    stack = make_stack()
    loads = []

    def load():
        loads.append(1)
        return {"v": 1}

    for ttl in BAD_TTLS:
        with pytest.raises(ValueError, match="ttl is a whole number of seconds from 1 to 86400"):
            stack.get_or_load("ai_inference", ["ttl", uuid.uuid4().hex], load, ttl=ttl)
    assert loads == []


async def test_a_bad_ttl_on_a_direct_coroutine_read_is_refused_before_loading():
    stack = make_stack()
    loads = []

    async def load():
        loads.append(1)
        return {"v": 1}

    try:
        for ttl in BAD_TTLS:
            with pytest.raises(ValueError, match="ttl is a whole number of seconds from 1 to 86400"):
                await stack.aget_or_load("ai_inference", ["ttl", uuid.uuid4().hex], load, ttl=ttl)
    finally:
        await sync_to_async(connections.close_all)()
    assert loads == []


def test_a_valid_ttl_shortens_the_entry_s_life():
    stack = make_stack()
    parts = ["ttl", uuid.uuid4().hex]
    assert stack.get_or_load("ai_inference", parts, lambda: {"v": 1}, ttl=30) == {"v": 1}
    assert stack.get_or_load("ai_inference", parts, lambda: {"v": 2}, ttl=86400) == {"v": 1}
    policy = stack.policy("ai_inference")
    entry = stack.l1.get("ai_inference", stack.key(policy, parts))
    assert entry is not None
    assert entry.fresh_until - entry.stale_until == -policy.swr
    assert entry.fresh_until <= stack.clock() + 30
