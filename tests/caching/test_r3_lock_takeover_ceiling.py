"""A single-flight lock was taken over when its TTL exceeded the taking process's own lease: in a rolling
deploy, a process with a shorter CACHE_SINGLE_FLIGHT_WAIT_SECONDS took the live locks of one with a longer
wait. Only a lock with no TTL or one above what any process's lease can be (the settings' bound) is taken."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from apps.caching import stack as stack_module
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _lock_key(stack, name: str) -> tuple:
    stack.tick(force=True)
    policy = stack.policy("ai_inference")
    key = stack.key(policy, [name, uuid.uuid4().hex])
    return policy, key, stack._l2_key("l", key)


def test_a_live_lock_of_a_process_with_a_longer_lease_is_not_taken_over():
    short = make_stack(single_flight_wait=2.0)  # lease 10 s
    policy, key, lock_key = _lock_key(short, "longer-lease")
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Another process's lock (wait 60 s: lease 300 s), 250 s left: above the short lease, below any ceiling.
    client.set(lock_key, "other-process", px=250_000)
    try:
        assert short._redis_lock(policy, key) is False  # the old script took it over
        assert client.get(lock_key) == b"other-process"
        assert short._lock_or_stored(policy, key, "", short.lookup(policy, key, ""))[0] is False
        assert client.get(lock_key) == b"other-process"
    finally:
        client.delete(lock_key)


@pytest.mark.parametrize("expiry_ms", [None, stack_module.LOCK_TAKEOVER_ABOVE_MS + 60_000], ids=["no-ttl", "above"])
def test_a_lock_no_lease_explains_is_still_taken_over(expiry_ms):
    reader = make_stack(single_flight_wait=2.0)
    policy, key, lock_key = _lock_key(reader, "no-lease")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(lock_key, "crashed-holder", px=expiry_ms)
    try:
        lock = reader._redis_lock(policy, key)
        assert lock
        assert client.get(lock_key) == lock.token.encode()
        assert 0 < client.pttl(lock_key) <= int(reader.loader_lifetime * 1000)
        reader._release(lock)
    finally:
        client.delete(lock_key)


def test_the_ceiling_follows_the_settings_bound_for_the_wait():
    source = (Path(settings.BASE_DIR) / "controlplane" / "settings.py").read_text()
    bound = re.search(r'"CACHE_SINGLE_FLIGHT_WAIT_SECONDS",[^\n]*maximum=([0-9.]+)', source)
    assert bound and float(bound.group(1)) == stack_module.MAX_SINGLE_FLIGHT_WAIT_SECONDS
    longest = make_stack(single_flight_wait=stack_module.MAX_SINGLE_FLIGHT_WAIT_SECONDS)
    assert int(longest.loader_lifetime * 1000) == stack_module.MAX_LOCK_LEASE_MS < stack_module.LOCK_TAKEOVER_ABOVE_MS
