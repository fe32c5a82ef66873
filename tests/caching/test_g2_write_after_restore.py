"""Review d2, finding 1: a generation bump must never reuse a number a restore may have taken back. The restore puts
a scope's (or a namespace's) generation back; the next write bumped it by one, to the number the taken-back value
was stored with, so a process that had not polled yet passed the L3 INSERT's generation compare and every process
then served the taken-back value for its TTL. A bump moves on to at least the database's clock in microseconds."""

from __future__ import annotations

import pytest

from apps.caching import services
from apps.caching.models import CacheEntry, CachePolicy, CacheScopeGeneration
from tests.caching import test_g_load_across_restore
from tests.caching.support import make_stack
from tests.caching.test_g_load_across_restore import (
    RESTORED,
    SCOPE,
    TAKEN_BACK,
    _during_a_slow_load,
    _read,
    _written_twice,
)

pytestmark = pytest.mark.django_db(transaction=True)
restore = test_g_load_across_restore.restore  # the fixture: the database put back to a backup


def test_a_write_after_the_restore_does_not_make_a_store_of_before_it_valid(restore):
    """The restore lands during the load, a write in another process follows it, and this process stores before its
    poll sees the epoch: the L3 INSERT's compare is its only guard, and the write bumped the restored generation
    back to the one the load read."""
    stack, key = _written_twice(restore)

    def restored_then_written() -> tuple[int, int]:
        lost = restore(stack, seen=False)
        make_stack().invalidate_scopes([SCOPE])  # a write after the restore, in another process
        return lost, CacheScopeGeneration.objects.get(scope=stack.scope_key(SCOPE)).generation

    out, (lost, after) = _during_a_slow_load(stack, restored_then_written)
    assert out == {"value": TAKEN_BACK}, "the read that raced the restore still gets its value"
    assert after > lost, "the write after the restore reused the generation the restore took back"
    assert not CacheEntry.objects.filter(key=key).exists(), "L3 row stored under the generation of before"
    restore.see(stack)
    assert _read(make_stack()) == RESTORED, "another process served what the restore took back"
    assert _read(stack) == RESTORED, "this process served what the restore took back"


def test_a_clear_after_the_restore_does_not_reuse_the_namespace_generation_it_took_back():
    """A namespace's key generation, which the restore also puts back: the clear (or orphaning edit) made after it
    bumped to the taken-back number, under which a process that had not polled yet stored what it read before."""
    services.cache_policy_ensure(namespace="ai_inference")
    services.cache_namespace_clear(namespace="ai_inference")
    lost = CachePolicy.objects.get(namespace="ai_inference").generation
    CachePolicy.objects.filter(namespace="ai_inference").update(generation=lost - 1)  # the restore
    services.cache_namespace_clear(namespace="ai_inference")
    assert CachePolicy.objects.get(namespace="ai_inference").generation > lost

    CachePolicy.objects.filter(namespace="ai_inference").update(generation=lost - 1)  # restored again
    policy = CachePolicy.objects.get(namespace="ai_inference")
    policy.ttl_seconds = max(1, policy.ttl_seconds - 1)  # a shorter TTL orphans the entries stored before
    policy.save()
    assert CachePolicy.objects.get(namespace="ai_inference").generation > lost
    assert policy.generation == CachePolicy.objects.get(namespace="ai_inference").generation
