"""A record in Redis that cannot be read (corrupt, or written by something else) is a miss, never a failed read."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from apps.caching import services
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


def _in_the_clear(namespace: str) -> None:
    policy = services.cache_policy_ensure(namespace=namespace)
    policy.contains_phi, policy.encrypt = False, False
    policy.save()


def test_an_l2_record_whose_freshness_is_not_a_number_is_a_miss_not_a_failed_read():
    """Before: a value in the clear whose freshness was not a number raised ValueError out of the read (a 500),
    where an unreadable sealed value is a miss (its header is authenticated, so it fails to open first)."""
    namespace, parts, scope = "reference_ranges", ["sodium"], "lab:sodium"
    _in_the_clear(namespace)
    stack = make_stack()
    calls = []

    def load():
        calls.append(1)
        return {"low": 135, "high": 145}

    assert stack.get_or_load(namespace, parts, load, scope=scope) == {"low": 135, "high": 145}
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        policy = stack.policy(namespace)
        value_key = stack._l2_key("v", stack.key(policy, parts))
        generation, _fresh, _stale, value = client.get(value_key).split(b"|", 3)
        client.set(value_key, b"%s|soon|later|%s" % (generation, value), px=60_000)
        stack.clear_local()  # L1 gone: the read goes to Redis
        assert stack.get_or_load(namespace, parts, load, scope=scope) == {"low": 135, "high": 145}
        assert stack.stats()[(namespace, "l2")]["errors"] >= 1
    finally:
        client.close()
