"""A single-flight lock was taken over when its TTL exceeded the taking process's own lease: in a rolling
deploy, a process with a shorter CACHE_SINGLE_FLIGHT_WAIT_SECONDS took the live locks of one with a longer
wait. Only a lock with no TTL or one above what any process's lease can be (the settings' bound) is taken."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import redis
from django.conf import settings

from apps.caching import stack as stack_module
from apps.caching.bounds import MAX_SINGLE_FLIGHT_WAIT_SECONDS
from tests.caching.support import make_stack
from tests.helpers import embedded_env, run_python

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


def test_the_ceiling_lies_above_the_longest_lease_the_settings_bound_allows():
    longest = make_stack(single_flight_wait=MAX_SINGLE_FLIGHT_WAIT_SECONDS)
    assert int(longest.loader_lifetime * 1000) == stack_module.MAX_LOCK_LEASE_MS < stack_module.LOCK_TAKEOVER_ABOVE_MS


def test_settings_bound_the_wait_where_the_ceiling_assumes(tmp_path):
    """settings.py and the stack read one constant (apps/caching/bounds.py), so a wait past the lease the
    ceiling was computed from stops start-up, and the bound itself starts."""
    code = "from django.conf import settings as s; print(s.CACHE_SINGLE_FLIGHT_WAIT_SECONDS)"
    above = run_python(
        code, embedded_env(tmp_path, CACHE_SINGLE_FLIGHT_WAIT_SECONDS=str(MAX_SINGLE_FLIGHT_WAIT_SECONDS + 1))
    )
    assert above.returncode != 0
    assert (
        f"CACHE_SINGLE_FLIGHT_WAIT_SECONDS must be at least 0 and at most {MAX_SINGLE_FLIGHT_WAIT_SECONDS}"
        in above.stderr
    )
    at = run_python(code, embedded_env(tmp_path, CACHE_SINGLE_FLIGHT_WAIT_SECONDS=str(MAX_SINGLE_FLIGHT_WAIT_SECONDS)))
    assert at.returncode == 0, at.stderr
    assert float(at.stdout.strip().splitlines()[-1]) == MAX_SINGLE_FLIGHT_WAIT_SECONDS


def test_the_bounds_module_is_safe_to_import_at_settings_time():
    code = "import sys, apps.caching.bounds; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
