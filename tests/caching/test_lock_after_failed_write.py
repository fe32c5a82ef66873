"""A single-flight lock is let go of when the L2 write it would have been released with fails while Redis is up."""

from __future__ import annotations

import pytest
import redis

from apps.caching.stack import HeldLock
from tests.caching.support import make_stack
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

OVER_THE_LIMIT = "x" * 1_200_000  # Redis is told below to refuse a value over 1 MB


def test_a_lock_whose_l2_write_was_refused_is_let_go_of_once_redis_is_called_again(own_redis):
    """Redis drops a write over its bulk limit (it resets the connection) but goes on answering. The breaker opens
    on that failure, and the release that went with the write never ran: before, the lock stayed for its whole
    lifetime (50 s here), and every other process's reader of the key waited on it, then loaded past it."""
    url, _servers = own_redis
    client = redis.Redis.from_url(url)
    client.config_set("proto-max-bulk-len", 1024 * 1024)
    loader_stack = make_stack(url, breaker_seconds=0.05, single_flight_wait=10)
    other = make_stack(url, single_flight_wait=10)
    policy = other.policy("ai_inference")
    key = other.key(policy, ["report", 1])
    lock_name = other._l2_key("l", key)

    assert loader_stack.get_or_load("ai_inference", ["report", 1], lambda: OVER_THE_LIMIT) == OVER_THE_LIMIT
    assert loader_stack.breaker.state == "open"  # the write failed
    assert client.ping()  # and Redis answers all the same

    def released() -> bool:
        loader_stack.tick(force=True)
        return not client.exists(lock_name)

    wait_for(released, 20, "the loader's process to let go of its lock")
    assert isinstance(other._redis_lock(policy, key), HeldLock)  # another process's reader loads at once
    client.close()
