"""A single-flight lock left in Redis with no expiry (a crashed holder's key written without PX, a SET from
outside) is taken over at once, not waited out by every reader of the key for ever."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings

from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _never_wait(*args, **kwargs):
    raise AssertionError("the reader waited for a lock nobody will ever let go of")


@pytest.mark.parametrize("expiry", [None, "far"], ids=["no-ttl", "longer-than-any-lease"])
def test_a_lock_with_no_expiry_is_taken_over_and_let_go(expiry):
    stack = make_stack(single_flight_wait=60.0)
    stack.tick(force=True)
    policy = stack.policy("ai_inference")
    parts = ["stuck-lock", uuid.uuid4().hex]
    lock_key = stack._l2_key("l", stack.key(policy, parts))
    client = redis.Redis.from_url(settings.REDIS_URL)
    if expiry is None:
        client.set(lock_key, "crashed-holder")
    else:
        client.set(lock_key, "crashed-holder", ex=30 * 24 * 3600)
    stack._wait_for_other_process = _never_wait
    try:
        assert stack.get_or_load("ai_inference", parts, lambda: {"score": 0.7}) == {"score": 0.7}
        assert client.get(lock_key) is None  # taken over, then let go with the store
        assert make_stack().get_or_load("ai_inference", parts, lambda: {"score": 0.0}) == {"score": 0.7}
    finally:
        client.delete(lock_key)


def test_a_lock_held_within_its_lease_is_still_respected():
    holder, reader = make_stack(), make_stack()
    holder.tick(force=True)
    reader.tick(force=True)
    policy = holder.policy("ai_inference")
    key = holder.key(policy, ["held-lock", uuid.uuid4().hex])
    lock = holder._redis_lock(policy, key)
    assert lock
    assert reader._redis_lock(policy, key) is False
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert 0 < client.pttl(lock.name) <= int(holder.loader_lifetime * 1000)
    holder._release(lock)
    assert reader._redis_lock(policy, key)
