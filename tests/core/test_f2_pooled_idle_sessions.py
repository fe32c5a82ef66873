"""The pool never hands out a connection whose session the server ended while it sat idle (a restart or failover,
idle_session_timeout, pg_terminate_backend): each such connection was handed out once more, and its request was
answered 503 database_unavailable. Real PostgreSQL; the sessions are ended with pg_terminate_backend, the audit
writer's own one spared (its check is tests/audit/test_group_commit.py's)."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

import psycopg
import psycopg.sql
import pytest
from django.db import connections

pytestmark = pytest.mark.django_db(transaction=True)  # requests must take and give back pooled connections

WAIT = 120  # seconds


def _idle_pooled(prepare: Callable[[psycopg.Connection], object] = lambda _: None) -> list[psycopg.Connection]:
    """Every connection the pool holds, each taken out (and prepared) and given back: all idle in the pool again,
    in this order, the one the next checkout gets first."""
    connections.close_all()
    pool = connections["default"].pool
    pool.open()
    pool.wait(WAIT)  # its min_size connections are in
    taken = []
    while pool.get_stats()["pool_available"]:
        taken.append(pool.getconn())
    for database in taken:
        prepare(database)
        pool.putconn(database)
    assert taken
    return taken


def _until_readable(databases: list[psycopg.Connection]) -> None:
    """Returns once what the server sent each idle session has reached its socket."""
    for database in databases:
        readable = select.poll()
        readable.register(database.pgconn.socket, select.POLLIN)
        assert readable.poll(WAIT * 1000)


def _on_another_session(sql: str, params: list) -> list[tuple]:
    with psycopg.connect(**connections["default"].get_connection_params(), autocommit=True) as other:
        return other.execute(sql, params).fetchall()


def test_requests_after_the_server_ended_the_pools_idle_sessions_are_served(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:write')}")
    idle = _idle_pooled()
    ended = [database.info.backend_pid for database in idle]
    # pg_terminate_backend(pid, timeout) returns once the backend has exited: its goodbye (FATAL, then the close) sent.
    assert _on_another_session("SELECT pg_terminate_backend(pid, 120000) FROM unnest(%s::int[]) pid", [ended]) == [
        (True,)
    ] * len(ended)
    _until_readable(idle)
    for n in range(len(idle) + 1):  # each ended connection would be handed out once, then one more
        payload = {"mrn": f"POOL-{n}", "family_name": "Okafor", "given_name": "Ada", "birth_date": "1981-02-03"}
        response = api.post("/api/v1/patients/", payload, format="json")
        assert response.status_code == 201, (n, response.status_code, response.content)
    connections.close_all()
    assert not set(ended) & {database.info.backend_pid for database in _idle_pooled()}  # all replaced


def test_a_pooled_connection_sent_a_notification_while_idle_is_kept_and_the_notification_delivered():
    """What a live server may send an idle session unasked (here a notification; a NOTICE or a ParameterStatus
    travels the same way) makes its socket readable too: that connection is handed out as before."""
    received = []

    def listen(database: psycopg.Connection) -> None:
        database.add_notify_handler(received.append)
        database.execute("LISTEN pool_idle_test")

    idle = _idle_pooled(listen)
    pids = [database.info.backend_pid for database in idle]
    _on_another_session("SELECT pg_notify('pool_idle_test', 'hello') FROM generate_series(1, 1)", [])
    _until_readable(idle)
    seen = []
    default = connections["default"]
    for _ in idle:  # the pool hands its connections out in turn
        with default.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            seen.append(cursor.fetchone()[0])
        default.close()
    assert seen == pids
    assert [(n.channel, n.payload) for n in received] == [("pool_idle_test", "hello")] * len(idle)


def _as_superuser_elsewhere(sql: str, params: list | None = None) -> None:
    """On the server's `postgres` database: the test's own may refuse connections meanwhile."""
    with psycopg.connect(
        **{**connections["default"].get_connection_params(), "dbname": "postgres"}, autocommit=True
    ) as other:
        other.execute(sql, params)


def test_with_the_server_refusing_connections_a_checkout_that_found_ended_ones_fails_without_the_pools_timeout():
    """The database really down: the ended connections found at a checkout are let go, and the checkout fails (the
    API's 503) once no live one comes in REPLACEMENT_WAIT_SECONDS, not after the pool's whole timeout (a worker
    thread held DB_POOL_TIMEOUT, 10 s, where a handed-out dead connection had failed at once). Here the pool's
    timeout is made far longer than the test's wait, so the checkout returning at all shows which bound held."""
    from django.db import OperationalError

    from apps.core.postgresql.base import REPLACEMENT_WAIT_SECONDS

    default = connections["default"]
    name = default.settings_dict["NAME"]
    idle = _idle_pooled()
    pool = default.pool
    kept_timeout, pool.timeout = pool.timeout, 100 * WAIT
    assert REPLACEMENT_WAIT_SECONDS < WAIT
    try:
        _as_superuser_elsewhere(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(psycopg.sql.Identifier(name))
        )
        ended = [database.info.backend_pid for database in idle]
        _as_superuser_elsewhere("SELECT pg_terminate_backend(pid, 120000) FROM unnest(%s::int[]) pid", [ended])
        _until_readable(idle)
        with pytest.raises(OperationalError), default.cursor() as cursor:
            cursor.execute("SELECT 1")
        default.close()
    finally:
        pool.timeout = kept_timeout
        _as_superuser_elsewhere(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(psycopg.sql.Identifier(name))
        )
    deadline = time.monotonic() + WAIT
    while True:  # the database back: the pool's reconnections (backing off meanwhile) serve again
        try:
            with default.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            break
        except OperationalError:
            assert time.monotonic() < deadline, "the pool never reconnected"
        finally:
            default.close()
