"""bench/sign_in_prune.py truncates django_session in the database it is given: it ran on any URL, by default
the database the other benches share. It now refuses a database whose name does not say "bench", before it
connects, and defaults to one of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from apps.core.sessions import SessionStore
from tests.helpers import REPO_ROOT


@pytest.mark.django_db(transaction=True)  # the session is committed, where the bench's own process would see it
def test_the_bench_refuses_a_database_not_named_bench_and_leaves_its_sessions():
    store = SessionStore()
    store["_auth_user_id"] = "1"
    store.create()
    settings = connection.settings_dict
    url = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    assert "bench" not in settings["NAME"]

    result = subprocess.run(
        [sys.executable, "bench/sign_in_prune.py", "--sessions", "1", "--database-url", url,
         "--redis-url", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    assert "must name a bench database" in result.stderr
    assert SessionStore(store.session_key).load() == {"_auth_user_id": "1"}  # nobody signed out
