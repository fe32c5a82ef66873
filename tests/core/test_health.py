"""/healthz and /readyz, including dependencies pointed at closed ports."""

import json
import shutil
import threading

import pytest

from apps.core import selectors
from apps.core.selectors import SHARED_REPORT_SECONDS, shared_readiness
from apps.core.services import worker_heartbeat_record
from tests.helpers import closed_port, embedded_env, run_python

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_shared_report_between_tests():
    shared_readiness.forget()
    yield
    shared_readiness.forget()


@pytest.fixture
def still_clock(monkeypatch):
    """The shared report's clock, moved only by the test: no expiry depends on how fast the machine is."""
    now = [1000.0]
    monkeypatch.setattr(shared_readiness, "clock", lambda: now[0])
    return now


@pytest.fixture
def report_runs(monkeypatch):
    runs = []
    real = selectors.readiness_report

    def counted():
        runs.append(1)
        return real()

    monkeypatch.setattr(selectors, "readiness_report", counted)
    monkeypatch.setattr("apps.core.views.readiness_report", counted)
    return runs


def test_anonymous_callers_share_one_report_a_second(client, still_clock, report_runs):
    """Each anonymous /readyz ran every dependency check: a flood of them was a cheap DoS."""
    worker_heartbeat_record(hostname="celery@test")
    for _ in range(5):
        response = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
        assert response.status_code == 200 and response.json()["status"] == "ok"
    assert len(report_runs) == 1
    still_clock[0] += SHARED_REPORT_SECONDS
    client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    assert len(report_runs) == 2


def test_callers_who_may_read_the_details_get_a_fresh_report(client, still_clock, report_runs):
    client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        assert "no worker heartbeat" in client.get("/readyz").json()["checks"]["worker"]["detail"]  # loopback
    assert len(report_runs) == 4


def test_concurrent_anonymous_callers_run_the_checks_once(still_clock, monkeypatch):
    runs = []
    monkeypatch.setattr(selectors, "readiness_report", lambda: runs.append(1) or ("ok", {}))
    start = threading.Barrier(8)
    answers = []

    def call():
        start.wait(timeout=30)
        answers.append(shared_readiness.report())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [("ok", {})] * 8
    assert runs == [1]


def test_healthz_touches_nothing(client, query_budget):
    with query_budget(0):  # the request timing's periodic flush is not the probe's work
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_probes_answer_head_and_refuse_writes(client):
    for path in ("/healthz", "/readyz"):
        assert client.head(path).status_code in (200, 503)
        assert client.post(path).status_code in (403, 405)  # CSRF refuses a cookie-less POST first


def test_readyz_reports_every_dependency_with_latency(client):
    worker_heartbeat_record(hostname="celery@test")
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body
    assert set(body["checks"]) == {
        "database",
        "cache",
        "broker",
        "channel_layer",
        "worker",
        "long_worker",
        "inference",
        "audit_partitions",
    }
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0


def test_readyz_without_a_worker_heartbeat_is_degraded_not_down(client):
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["status"] == "error"
    assert "no worker heartbeat" in body["checks"]["worker"]["detail"]


READYZ = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(response.status_code, response.content.decode())
"""


# A child process's whole run (django.setup, the checks, migrate), bounded well above what a loaded host takes: migrate
# alone took over 60 s (run_python's default) on a 2-core host running two test processes and busy loops, and the
# tests below failed before /readyz was ever asked. What a test asserts is what /readyz answered, never how fast.
CHILD_SECONDS = 300


def _readyz(env):
    result = run_python(READYZ, env, timeout=CHILD_SECONDS)
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
    return int(status), json.loads(body)


@pytest.fixture(scope="module")
def migrated_var_dir(tmp_path_factory):
    """One migrated embedded database for the module, each test working on a copy: three migrations per run
    made the load that timed them out."""
    var_dir = tmp_path_factory.mktemp("migrated")
    migrate = run_python(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('migrate', verbosity=0)",
        embedded_env(var_dir),
        timeout=CHILD_SECONDS,
    )
    assert migrate.returncode == 0, migrate.stderr
    return var_dir


@pytest.fixture
def migrated_embedded_env(tmp_path, migrated_var_dir):
    def make(**extra):
        for database in migrated_var_dir.glob("controlplane.sqlite3*"):
            shutil.copy2(database, tmp_path / database.name)
        return embedded_env(tmp_path, **extra)

    return make


def test_readyz_is_503_when_the_database_is_down(tmp_path):
    status, body = _readyz(
        embedded_env(tmp_path, DATABASE_URL=f"postgres://x@127.0.0.1:{closed_port()}/cp", DB_POOL_TIMEOUT="1")
    )
    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"]["status"] == "error"


PROBES_WITH_A_SESSION_COOKIE = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "a" * 32  # an operator's browser, signed in to admin before the outage
for path in ("/healthz", "/readyz"):
    response = client.get(path)
    print(path, response.status_code, response.headers["Content-Type"])
"""


def test_probes_from_a_signed_in_browser_answer_while_the_database_is_down(tmp_path):
    """The idle logoff read the session (a database query) before any view, probes included: an operator's
    browser, signed in to admin, got a 500 for /healthz and /readyz during the outage they came to look at."""
    env = embedded_env(tmp_path, DATABASE_URL=f"postgres://x@127.0.0.1:{closed_port()}/cp", DB_POOL_TIMEOUT="1")
    result = run_python(PROBES_WITH_A_SESSION_COOKIE, env, timeout=CHILD_SECONDS)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("/")]
    assert lines == ["/healthz 200 application/json", "/readyz 503 application/json"], result.stdout


API_WITH_A_SESSION_COOKIE = """
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "a" * 32  # the dashboard's own API calls carry the staff session
for path in ("/api/v1/whoami/", "/fhir/Patient"):
    response = client.get(path)
    print(path, response.status_code, response.headers.get("Retry-After"), response.headers["Content-Type"])
"""


def test_api_calls_from_a_signed_in_browser_say_the_database_is_unavailable(tmp_path):
    """The idle logoff's read of the session failed first: the dashboard's API calls got a 500 during a database
    outage, where every other API answer is a 503 with Retry-After (database_unavailable)."""
    env = embedded_env(tmp_path, DATABASE_URL=f"postgres://x@127.0.0.1:{closed_port()}/cp", DB_POOL_TIMEOUT="1")
    result = run_python(API_WITH_A_SESSION_COOKIE, env, timeout=CHILD_SECONDS)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("/")]
    assert lines == ["/api/v1/whoami/ 503 2 application/json", "/fhir/Patient 503 2 application/fhir+json"], (
        result.stdout
    )


def test_readyz_is_degraded_when_the_broker_is_down(migrated_embedded_env):
    env = migrated_embedded_env(
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed_port()}//",
        CELERY_BROKER_CONNECTION_TIMEOUT="1",
    )
    status, body = _readyz(env)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_is_degraded_when_redis_is_down(migrated_embedded_env):
    env = migrated_embedded_env(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    status, body = _readyz(env)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "error"
    assert body["checks"]["channel_layer"]["status"] == "error"


def test_readyz_503_when_a_dependency_made_required_is_down(migrated_embedded_env):
    env = migrated_embedded_env(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", READYZ_REQUIRED="database,cache")
    status, body = _readyz(env)
    assert status == 503
    assert body["checks"]["cache"]["status"] == "error"


def test_a_pool_not_open_reads_nothing_in_use(monkeypatch):
    """psycopg_pool counts the min_size connections an unopened pool would open as taken: a fixed-size pool
    (min = max = 4) of a process that has not connected yet read "4/4 in use" in /readyz and 100% in the
    optimizer's findings. A real psycopg pool, never opened, stands in for this process's (the test's own
    connection is already taken from the real one)."""
    from django.db import connections
    from psycopg_pool import ConnectionPool

    from apps.core.selectors import database_pool_stats

    unopened = ConnectionPool(kwargs={}, min_size=4, max_size=4, open=False)
    monkeypatch.setitem(type(connections["default"])._connection_pools, "default", unopened)
    stats = database_pool_stats()
    assert (stats["in_use"], stats["size"], stats["utilization"], stats["max_size"]) == (0, 0, 0.0, 4)


def test_readyz_is_degraded_while_the_audit_partition_task_has_given_up(client):
    """The daily task gave up (a long reader of the trail in its way at every retry): only `audit verify` said
    so, and once the partitions ran out the months had none of their own."""
    from django.core.cache import cache

    from apps.audit.services import PARTITION_FAILURE_CACHE_KEY

    worker_heartbeat_record(hostname="celery@test")
    cache.set(PARTITION_FAILURE_CACHE_KEY, {"at": "2026-12-05T01:15:00Z", "attempts": 8, "reason": "lock timeout"})
    body = client.get("/readyz").json()
    assert client.get("/readyz").status_code == 200 and body["status"] == "degraded"
    assert body["checks"]["audit_partitions"]["status"] == "degraded"
    assert "gave up" in body["checks"]["audit_partitions"]["detail"]


def test_readyz_tells_an_outside_caller_each_status_but_no_detail(client, settings):
    """The details name hosts and ports of a failed dependency, the pool's figures and the worker's pod: an
    unauthenticated caller through the ingress read them all."""
    worker_heartbeat_record(hostname="celery@worker-pod-7f9c")
    outside = client.get("/readyz", REMOTE_ADDR="203.0.113.9")
    assert outside.status_code == 200
    body = outside.json()
    assert body["checks"]["worker"]["status"] == "ok" and body["checks"]["database"]["latency_ms"] >= 0
    assert "worker-pod-7f9c" not in outside.content.decode()
    assert not any("detail" in check for check in body["checks"].values())
    assert "worker-pod-7f9c" in client.get("/readyz").json()["checks"]["worker"]["detail"]  # loopback: allowed
    settings.METRICS_TOKEN = "t" * 40
    with_token = client.get("/readyz", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {'t' * 40}")
    assert "worker-pod-7f9c" in with_token.json()["checks"]["worker"]["detail"]
