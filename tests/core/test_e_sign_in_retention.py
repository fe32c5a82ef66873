"""Expired sessions and old sign-in log rows are deleted hourly (core.prune_sign_ins). Nothing ran `clearsessions`:
every staff session that timed out stayed in django_session for ever, and axes' AccessLog kept a row for every
login. Live sessions, recent log rows and axes' lockout counters are kept; a backlog goes in batches."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.sessions.models import Session
from django.db import connection, connections, router
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from apps.core import services
from apps.core.sessions import SessionStore
from controlplane.celery import app as celery_app
from tests.helpers import embedded_env, free_port, manage

SCHEDULE = "Prune expired sessions and the sign-in log"
TASK = "core.prune_sign_ins"


def _run_as_beat_sends_it() -> dict:
    """The task beat's schedule names, looked up by that name and run through Celery's task machinery in this
    process, as a worker runs it (the worker test below sends it to a real one)."""
    celery_app.loader.import_default_modules()
    return celery_app.tasks[TASK].apply().get()


def _session(expires_in: timedelta) -> str:
    """A session saved by the project's store, as a login does, then given its expiry."""
    store = SessionStore()
    store["_auth_user_id"] = "1"
    store.create()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() + expires_in)
    return store.session_key


def _sign_in(username: str, age: timedelta) -> int:
    row = AccessLog.objects.create(username=username, ip_address="10.0.0.1", user_agent="test", path_info="/admin/")
    AccessLog.objects.filter(pk=row.pk).update(attempt_time=timezone.now() - age)
    return row.pk


@pytest.mark.django_db
def test_migrate_installs_the_hourly_schedule_beat_reads():
    task = PeriodicTask.objects.get(name=SCHEDULE)
    assert task.task == TASK and task.enabled and task.queue is None
    assert (task.interval.every, task.interval.period) == (1, "hours")
    entry = DatabaseScheduler(app=celery_app, lazy=True).all_as_schedule()[SCHEDULE]
    assert entry.schedule.run_every == timedelta(hours=1)
    # The `worker` process (the Procfile's, consuming `default` alone) is the one that takes it.
    assert celery_app.amqp.router.route({}, TASK)["queue"].name == "default"


@pytest.mark.django_db
def test_expired_sessions_go_live_ones_stay():
    expired = [_session(-timedelta(minutes=1)), _session(-timedelta(days=400))]
    live = _session(timedelta(hours=1))

    result = _run_as_beat_sends_it()

    assert result["sessions"] == 2
    assert not Session.objects.filter(pk__in=expired).exists()
    assert SessionStore(live).load() == {"_auth_user_id": "1"}  # still signed in


@pytest.mark.django_db
def test_a_backlog_of_sessions_is_deleted_in_batches():
    for _ in range(25):
        _session(-timedelta(days=1))
    live = _session(timedelta(hours=1))

    with CaptureQueriesContext(connection) as queries:
        deleted = services.sessions_expired_prune(batch_size=10)

    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "django_session"')]
    assert deleted == 25
    assert len(deletes) == 3  # 10, 10, 5: each a short statement, never one DELETE over the whole backlog
    assert list(Session.objects.values_list("pk", flat=True)) == [live]


@pytest.mark.django_db
def test_sign_in_log_rows_past_the_retention_go_lockout_counters_stay(settings):
    settings.SIGN_IN_LOG_KEEP_DAYS = 30
    old = [_sign_in("alice", timedelta(days=31)), _sign_in("bob", timedelta(days=900))]
    recent = _sign_in("carol", timedelta(days=29))
    attempt = AccessAttempt.objects.create(
        username="mallory", ip_address="10.0.0.2", user_agent="test", path_info="/admin/", failures_since_start=3
    )

    result = _run_as_beat_sends_it()

    assert result["sign_in_log"] == 2
    assert not AccessLog.objects.filter(pk__in=old).exists()
    assert AccessLog.objects.filter(pk=recent).exists()
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()  # a lockout in force is axes' own to lift


@pytest.mark.django_db
def test_a_backlog_of_sign_in_log_rows_is_deleted_in_batches():
    for number in range(7):
        _sign_in(f"user{number}", timedelta(days=10))
    kept = _sign_in("today", timedelta(0))

    with CaptureQueriesContext(connection) as queries:
        deleted = services.sign_in_log_prune(keep_days=1, batch_size=3)

    deletes = [q for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "axes_accesslog"')]
    assert (deleted, len(deletes)) == (7, 3)
    assert list(AccessLog.objects.values_list("pk", flat=True)) == [kept]


@pytest.mark.django_db(transaction=True)
def test_a_worker_takes_the_scheduled_task_and_prunes(broker_emptied, worker):
    expired = _session(-timedelta(minutes=5))
    live = _session(timedelta(hours=1))

    celery_app.send_task(TASK)  # what beat sends: the task by name, routed by CELERY_TASK_ROUTES

    deadline = time.monotonic() + 120  # as other tests starting a worker allow it
    while Session.objects.filter(pk=expired).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Session.objects.filter(pk=expired).exists()
    assert Session.objects.filter(pk=live).exists()


@pytest.mark.parametrize("value", ["0", "36700", "ninety"])
def test_an_out_of_range_retention_stops_start_up_in_one_line(tmp_path, value):
    result = manage("check", env=embedded_env(tmp_path, SIGN_IN_LOG_KEEP_DAYS=value))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SIGN_IN_LOG_KEEP_DAYS" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def replica_down(monkeypatch):
    """A `replica` alias configured as DATABASE_REPLICA_URL makes it (the router then reads AccessLog there), on a
    port where nothing listens: a replica in an outage. Not pooled, so a connection attempt fails at once instead
    of after the pool's timeout. The alias is forgotten afterwards."""
    down = {**connections.settings["default"], "PORT": free_port()}
    down["OPTIONS"] = {key: value for key, value in down["OPTIONS"].items() if key != "pool"}
    monkeypatch.setitem(connections.settings, "replica", down)
    yield
    if hasattr(connections._connections, "replica"):
        connections["replica"].close()
        del connections["replica"]


# Committed for real: inside a test's wrapping transaction the router keeps every read on the primary anyway.
@pytest.mark.django_db(transaction=True)
def test_the_prune_writes_on_the_primary_while_the_replica_is_down(replica_down):
    old = _sign_in("alice", timedelta(days=40))
    expired = _session(-timedelta(minutes=1))
    assert router.db_for_read(AccessLog) == "replica"  # the rows' queryset is read-routed there

    assert services.sign_in_log_prune(keep_days=30) == 1
    assert services.sessions_expired_prune() == 1

    assert not AccessLog.objects.using("default").filter(pk=old).exists()
    assert not Session.objects.using("default").filter(pk=expired).exists()
    assert not hasattr(connections._connections, "replica")  # never even connected to the replica


def _blocks_read_per_delete(table: str, prune) -> list[int]:
    """The buffers `table` and its indexes were read from (this transaction's pg_stat counts) between one DELETE
    of the prune and the next: what each batch visited, its boundary read included."""
    sql = (
        "SELECT sum(pg_stat_get_xact_blocks_fetched(oid)) FROM pg_class "
        "WHERE oid = %s::regclass OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass)"
    )
    totals: list[int] = []

    def read_blocks() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, [table, table])
            return int(cursor.fetchone()[0] or 0)

    def after_each_delete(execute, statement, params, many, context):
        result = execute(statement, params, many, context)
        if statement.startswith(f'DELETE FROM "{table}"'):  # noqa: S608 (a table this file names)
            totals.append(read_blocks())
        return result

    start = read_blocks()
    with connection.execute_wrapper(after_each_delete):
        prune()
    return [now - before for before, now in zip([start, *totals], totals, strict=False)]


# One transaction (the test's): the rows earlier batches deleted stay in the index, as they do until vacuum.
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("table", "seed", "prune"),
    [
        (
            "django_session",
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "SELECT md5('expired' || n), repeat('x', 200), now() - (n % 500 + 1) * interval '1 minute' "
            "FROM generate_series(1, 20000) AS n",
            lambda: services.sessions_expired_prune(batch_size=1000),
        ),
        (
            "axes_accesslog",
            "INSERT INTO axes_accesslog (user_agent, ip_address, username, http_accept, path_info, attempt_time, "
            "session_hash) SELECT 'test', '10.0.0.1', 'user' || n, '*/*', '/admin/', now() - interval '40 days', '' "
            "FROM generate_series(1, 20000) AS n",
            lambda: services.sign_in_log_prune(keep_days=30, batch_size=1000),
        ),
    ],
)
def test_each_batch_of_a_backlog_visits_about_as_much_as_the_first(table, seed, prune):
    with connection.cursor() as cursor:
        cursor.execute(seed)
        cursor.execute(f"ANALYZE {table}")

    visited = _blocks_read_per_delete(table, prune)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a table this file names)
        assert cursor.fetchone()[0] == 0  # every row, the 40 that share each expiry date included
    assert len(visited) == 21  # 20 full batches, then the last finds none
    assert max(visited[:20]) <= 2 * visited[0], visited  # a LIMIT from the start stepped over every deleted row
