"""A revoked token stops working in another process that has it cached because the change is announced (each
process re-reads the shared version of its client cache at most once a second: about a second), and when the
change was never published (made in SQL, or Redis out of the revoking process's reach), because the entries
expire (API_CLIENT_CACHE_TTL_SECONDS, 5 s). The README's figures are the expected times; the tests wait on the
refusal itself, with ceilings that still tell those mechanisms from the minute-long expiry they replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import (
    API_CLIENT_CACHE_TTL_SECONDS,
    api_client_create,
    api_client_delete,
    api_client_revoke,
    api_client_rotate,
)
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

# Another process of the product: the whole request path (middleware, DRF, the token cache), once every 20 ms.
# With CALLER_ENTRY_TTL set, its client cache keeps entries that long instead of API_CLIENT_CACHE_TTL_SECONDS.
CALLER = """
import os, sys, time
import django
django.setup()
from django.test import Client
if os.environ.get("CALLER_ENTRY_TTL"):
    from apps.accounts.services import api_clients_cache
    api_clients_cache.ttl = float(os.environ["CALLER_ENTRY_TTL"])
client, token = Client(), os.environ["TOKEN_UNDER_TEST"]
deadline = time.time() + 120
while time.time() < deadline:
    print(client.get("/api/v1/whoami/", HTTP_AUTHORIZATION="Bearer " + token).status_code, flush=True)
    time.sleep(0.02)
"""


# A published change must reach the other process long before its entries expire: those are kept a minute there
# (VersionedLocalCache's default, which the version replaced as the way a change arrives), so a refusal before
# 30 s can only have come from the version (about a second), with half a minute of room for a loaded machine.
ENTRY_TTL_FOR_PUBLISHED_CHANGES = 60.0
REFUSED_WITHIN_SECONDS = 30.0


def _refuses_after(token: str, change, *, entry_ttl: float | None = None) -> None:
    """Start the other process, let it cache the client, make `change` here, and wait (up to
    REFUSED_WITHIN_SECONDS) for the other process to refuse the token; fail if it never does."""
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "TOKEN_UNDER_TEST": token,
        "CALLER_ENTRY_TTL": str(entry_ttl or ""),
    }
    caller = subprocess.Popen([sys.executable, "-c", CALLER], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # served, so the caller's process holds the client in its cache
            assert caller.stdout.readline().strip() == "200"
        change()
        deadline = time.monotonic() + REFUSED_WITHIN_SECONDS
        for line in caller.stdout:  # a line every 20 ms while the caller runs (two minutes)
            if line.strip() == "401":
                return
            if time.monotonic() > deadline:
                break
        raise AssertionError(
            f"the other process still served the token {REFUSED_WITHIN_SECONDS:.0f} s after the change"
        )
    finally:
        caller.kill()
        caller.wait()


@pytest.mark.parametrize("change", ["revoke", "rotate", "delete"])
def test_a_token_revoked_rotated_or_deleted_here_is_refused_by_another_process_before_its_entry_expires(change):
    """The other process keeps its entries a minute here: only the announced change can reach it in time."""
    issued = api_client_create(name=f"ward-app-{change}", scopes=["patient:read"])
    act = {"revoke": api_client_revoke, "rotate": api_client_rotate, "delete": api_client_delete}[change]
    _refuses_after(
        issued.token,
        lambda: act(client=ApiClient.objects.get(pk=issued.client.pk)),
        entry_ttl=ENTRY_TTL_FOR_PUBLISHED_CHANGES,
    )


def test_a_revoke_that_was_never_published_still_reaches_another_process_as_its_entry_expires():
    """A revoke written in SQL bumps no version (as one whose publication to Redis failed): the other
    process's cached client expires after API_CLIENT_CACHE_TTL_SECONDS (5 s), not after a minute (the
    default), so it is refused within the half minute waited for."""
    issued = api_client_create(name="ward-app", scopes=["patient:read"])

    def revoke_in_sql():
        ApiClient.objects.filter(pk=issued.client.pk).update(revoked_at=timezone.now(), is_active=False)

    assert API_CLIENT_CACHE_TTL_SECONDS < REFUSED_WITHIN_SECONDS
    _refuses_after(issued.token, revoke_in_sql)
