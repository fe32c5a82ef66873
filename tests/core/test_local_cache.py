"""The versioned per-process cache: no query per read, yet a change elsewhere is seen within the interval."""

import time

import pytest
from django.test import override_settings

from apps.core.local_cache import VersionedLocalCache
from tests.helpers import closed_port


def test_values_are_served_locally_until_another_process_bumps_the_version():
    # An interval no stalled thread outlasts: at 50 ms, a loaded host's pause between two reads re-read the version
    # and "still inside the check interval" failed. Its end is reached by moving the last check back.
    this_process = VersionedLocalCache("test-ns", check_interval=3600)
    other_process = VersionedLocalCache("test-ns", check_interval=3600)
    loads = []

    def loader():
        loads.append(1)
        return {"scopes": ["patient:read"]}

    assert this_process.get("k", loader) == {"scopes": ["patient:read"]}
    assert this_process.get("k", loader) == {"scopes": ["patient:read"]}
    assert len(loads) == 1

    other_process._bump()  # what a committed revoke does
    assert this_process.get("k", loader) and len(loads) == 1  # still inside the check interval
    this_process._checked_at -= this_process.check_interval  # the interval has passed
    this_process.get("k", loader)
    assert len(loads) == 2


def test_a_load_that_began_before_a_change_is_not_kept_after_it():
    """A thread that read a client just before its revoke stored it just after another thread heard of the
    revoke and cleared the entries: the revoked token then worked in that process until the entry's TTL."""
    this_process = VersionedLocalCache("test-race", check_interval=0.05)
    other_process = VersionedLocalCache("test-race", check_interval=0.05)
    this_process.get("warm", lambda: "v")  # reads the shared version

    def load_across_a_revoke():
        other_process._bump()  # committed elsewhere while this load is in flight
        time.sleep(0.06)
        this_process.get("other-key", lambda: "x")  # another thread of this process hears of it and clears
        return {"revoked_at": None}  # what the load read before the revoke

    assert this_process.get("k", load_across_a_revoke) == {"revoked_at": None}  # its own caller asked before
    assert this_process.get("k", lambda: {"revoked_at": "now"}) == {"revoked_at": "now"}


def test_none_is_never_cached_and_entries_expire():
    local = VersionedLocalCache("test-ttl", check_interval=0.0, ttl=0.05)
    calls = []
    assert local.get("missing", lambda: calls.append(1)) is None
    assert local.get("missing", lambda: calls.append(1)) is None
    assert len(calls) == 2
    local.get("k", lambda: calls.append(1) or "v")
    time.sleep(0.06)
    local.get("k", lambda: calls.append(1) or "v")
    assert len(calls) == 4


def test_without_the_shared_cache_every_read_goes_to_the_loader():
    local = VersionedLocalCache("test-down", check_interval=0.0)
    unreachable = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    calls = []
    with override_settings(CACHES=unreachable):
        local.get("k", lambda: calls.append(1) or "v")
        local.get("k", lambda: calls.append(1) or "v")
    assert len(calls) == 2


@pytest.mark.django_db
def test_a_token_used_then_revoked_is_refused_at_once(api, issue_token):
    from apps.accounts.models import ApiClient
    from apps.accounts.services import api_client_revoke

    token = issue_token("patient:read", name="cached")
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    api_client_revoke(client=ApiClient.objects.get(name="cached"))
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
