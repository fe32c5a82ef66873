"""How long a revoked token still works in another process that has it cached: about a second (each process
re-reads the shared version of its client cache at most once a second), and when the change was never
published (made in SQL, or Redis out of the revoking process's reach), at most the entries' 5 s."""

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
CALLER = """
import os, sys, time
import django
django.setup()
from django.test import Client
client, token = Client(), os.environ["TOKEN_UNDER_TEST"]
deadline = time.time() + 20
while time.time() < deadline:
    print(client.get("/api/v1/whoami/", HTTP_AUTHORIZATION="Bearer " + token).status_code, flush=True)
    time.sleep(0.02)
"""


def _refused_after(token: str, change) -> float:
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "TOKEN_UNDER_TEST": token,
    }
    caller = subprocess.Popen([sys.executable, "-c", CALLER], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # served, so the caller's process holds the client in its cache
            assert caller.stdout.readline().strip() == "200"
        change()
        changed = time.monotonic()
        for line in caller.stdout:
            if line.strip() == "401":
                return time.monotonic() - changed
        raise AssertionError("the other process never refused the token")
    finally:
        caller.kill()
        caller.wait()


@pytest.mark.parametrize("change", ["revoke", "rotate", "delete"])
def test_a_token_revoked_rotated_or_deleted_here_is_refused_by_another_process_within_two_seconds(change):
    issued = api_client_create(name=f"ward-app-{change}", scopes=["patient:read"])
    act = {"revoke": api_client_revoke, "rotate": api_client_rotate, "delete": api_client_delete}[change]
    elapsed = _refused_after(issued.token, lambda: act(client=ApiClient.objects.get(pk=issued.client.pk)))
    assert elapsed < 2.0, f"the other process still served the token {elapsed:.2f}s after the {change}"


def test_a_revoke_that_was_never_published_still_reaches_another_process_within_the_entries_ttl():
    """A revoke written in SQL bumps no version (as one whose publication to Redis failed): the other
    process's cached client expires after API_CLIENT_CACHE_TTL_SECONDS, not after a minute."""
    issued = api_client_create(name="ward-app", scopes=["patient:read"])

    def revoke_in_sql():
        ApiClient.objects.filter(pk=issued.client.pk).update(revoked_at=timezone.now(), is_active=False)

    elapsed = _refused_after(issued.token, revoke_in_sql)
    assert elapsed < API_CLIENT_CACHE_TTL_SECONDS + 1.5, f"the other process served the token for {elapsed:.2f}s"
