"""The recorder's background thread (the idle flush and the pool-use publish) hands its database connection
back to the pool after each round: it kept one for the life of the process, so a process with
DB_POOL_MAX_SIZE=1 answered every request with 503 after its first background flush, and every pool's use
read at least 1/max. A real Python process with the product's settings and pool, on the test database."""

from __future__ import annotations

import json
import os

import pytest

from apps.metrics.models import RequestRollup
from tests.helpers import database_url, run_python

pytestmark = pytest.mark.django_db(transaction=True)

FLUSH_IN_THE_BACKGROUND = """
import json, time
import django
django.setup()
from django.db import connection
from apps.core.selectors import database_pool_stats
from apps.metrics.recorder import Recorder

recorder = Recorder(flush_interval=0.1, background=True)
recorder.record(route="api/v1/flush-thread-i/", method="GET", status=200, client="app", elapsed_us=1_000)
deadline = time.monotonic() + 20
while recorder.pending_requests() and time.monotonic() < deadline:
    time.sleep(0.05)
flushed = recorder.pending_requests() == 0
# The pool's use once the thread's round is over: waited for (up to a deadline), never raced.
while time.monotonic() < deadline and (database_pool_stats() or {}).get("in_use"):
    time.sleep(0.05)
in_use = database_pool_stats()["in_use"]
# What a request does next: take the pool's only connection (DB_POOL_TIMEOUT=2: refused, not waited on).
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    request = "served"
except Exception as exc:
    request = type(exc).__name__
connection.close()
print(json.dumps({"flushed": flushed, "in_use": in_use, "request": request}))
"""


def test_background_flush_hands_its_connection_back_to_a_one_connection_pool():
    env = {**os.environ, "DATABASE_URL": database_url(), "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "1",
           "DB_POOL_TIMEOUT": "2", "METRICS_BACKGROUND_FLUSH": "true"}  # fmt: skip
    finished = run_python(FLUSH_IN_THE_BACKGROUND, env)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout.strip().splitlines()[-1])

    assert result == {"flushed": True, "in_use": 0, "request": "served"}
    [rollup] = RequestRollup.objects.filter(route="api/v1/flush-thread-i/")
    assert rollup.count == 1
