"""/readyz with PostgreSQL unreachable (a closed port, or a listener that accepts and never answers), in a real
process with the product's settings and pool: the first call answers by the report's deadline, and the worker
check judges the worker by its heartbeat in Redis, not by the database.

The first call of a fresh server took 12 s: the request-timing middleware flushed in the request's thread, whose
database clock read waited the pool's timeout (10 s). The worker check read "no answer within 2s" (then "no answer
yet from the previous check") for a healthy worker: its heartbeat schedule read waited for the pool too.

The process's cache is a redis-server of the test's own: on the suite's Redis DB, another pytest run sharing it
emptied it (each test's cache.clear()) or rewrote the heartbeat between this test's write and its /readyz, and
the worker read "no worker heartbeat recorded yet"."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from tests.helpers import free_port, run_python, start_redis

FIRST_READYZ = """
import json, time
import django
django.setup()
from datetime import UTC, datetime
from django.core.cache import cache
from django.test import Client
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY

cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": datetime.now(UTC).isoformat(), "hostname": "worker-f3"}, 300)
client = Client()
time.sleep(0.5)  # past METRICS_FLUSH_SECONDS: the request's timing is due to be flushed
started = time.monotonic()
response = client.get("/readyz")
elapsed = time.monotonic() - started
body = response.json()
print(json.dumps({"elapsed": elapsed, "status": response.status_code, "database": body["checks"]["database"],
                  "worker": body["checks"]["worker"]}))
"""


@pytest.fixture
def blackhole_port():
    """A TCP listener that accepts connections and never answers them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def own_redis_url():
    """A redis-server of this test's own: the heartbeat it writes is the one its /readyz reads."""
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(20)


@pytest.fixture(params=["closed_port", "blackhole"])
def unreachable_database_url(request):
    if request.param == "closed_port":
        return f"postgres://postgres@127.0.0.1:{free_port()}/controlplane_f3"
    return f"postgres://postgres@127.0.0.1:{request.getfixturevalue('blackhole_port')}/controlplane_f3"


def test_first_readyz_answers_by_its_deadline_and_judges_the_worker_by_its_heartbeat(
    unreachable_database_url, own_redis_url
):
    env = {**os.environ, "DATABASE_URL": unreachable_database_url, "REDIS_URL": own_redis_url, "DB_POOL_MIN_SIZE": "2",
           "DB_POOL_MAX_SIZE": "10", "DB_POOL_TIMEOUT": "10", "METRICS_BACKGROUND_FLUSH": "true",
           "METRICS_REQUEST_TIMING": "true", "METRICS_FLUSH_SECONDS": "0.2"}  # fmt: skip
    finished = run_python(FIRST_READYZ, env, timeout=90)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])

    assert result["status"] == 503
    assert result["database"]["status"] == "error"
    assert result["elapsed"] < 5, result  # the report's deadline is 2 s; the old code took the pool's 10 s more
    assert result["worker"]["status"] == "ok", result  # a fresh heartbeat in Redis: the worker is up
