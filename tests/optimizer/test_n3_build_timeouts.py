"""A role's lock_timeout (ALTER ROLE ... SET lock_timeout, often beside statement_timeout on request roles)
cancelled CREATE INDEX CONCURRENTLY while it waited out an old snapshot, a lock wait: the build now runs
without either timeout, and the session's own values come back after it, a failed or cancelled one too."""

import threading
import time

import pytest

from apps.optimizer.database import BuildCancelled, build_abandoned, designed_index_sql, index_create
from tests.optimizer.support import INDEX, connect, index_state, sql

pytestmark = [
    pytest.mark.django_db(transaction=True),  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    pytest.mark.usefixtures("designed_indexes_restored"),
]


@pytest.fixture
def request_timeouts():
    """This session's timeouts as a request role's (the connection goes back to the pool after the test)."""
    sql("SET lock_timeout = '300ms'")
    sql("SET statement_timeout = '5s'")
    yield
    sql("RESET lock_timeout")
    sql("RESET statement_timeout")


def _old_snapshot():
    """A session holding a snapshot every CONCURRENTLY build (and drop) must wait out, until it commits."""
    holder = connect()
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT 1 FROM clinical_patient LIMIT 1")
    return holder


def _timeouts() -> list[tuple]:
    return sql("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")


def test_a_build_waiting_out_an_old_snapshot_outlasts_the_roles_lock_timeout(data, request_timeouts):
    sql(f"DROP INDEX {INDEX}")
    holder = _old_snapshot()
    release = threading.Timer(2.0, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        outcome = index_create(index=INDEX)
    finally:
        release.join()
        holder.close()
    assert outcome == {"index": INDEX, "sql": designed_index_sql(INDEX)}
    assert index_state(INDEX) == (True,)
    assert _timeouts() == [("300ms", "5s")]


def test_the_sessions_timeouts_come_back_after_a_build_that_fails(data, request_timeouts):
    """The build fails (another session's cancel); the same pooled connection serves the next request."""
    sql(f"DROP INDEX {INDEX}")
    holder = _old_snapshot()
    pid = sql("SELECT pg_backend_pid()")[0][0]
    canceller = connect()

    def cancel_the_build() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if canceller.execute("SELECT 1 FROM pg_stat_progress_create_index WHERE pid = %s", [pid]).fetchone():
                time.sleep(1.0)  # past the role's lock_timeout: still waiting, not cancelled by it
                canceller.execute("SELECT pg_cancel_backend(%s)", [pid])
                return
            time.sleep(0.1)

    cancelling = threading.Thread(target=cancel_the_build)
    cancelling.start()
    try:
        with pytest.raises(Exception, match="canceling statement due to user request"):
            index_create(index=INDEX)
    finally:
        cancelling.join(35)
        holder.execute("COMMIT")
        holder.close()
        canceller.close()
    assert index_state(INDEX) is None  # its leftover dropped
    assert _timeouts() == [("300ms", "5s")]


def test_a_cancelled_run_still_stops_a_build_that_runs_without_the_timeouts(data, request_timeouts):
    sql(f"DROP INDEX {INDEX}")
    holder = _old_snapshot()
    wanted = threading.Event()
    token = build_abandoned.set(wanted.is_set)
    threading.Timer(1.5, wanted.set).start()  # the run is cancelled while the build waits
    try:
        with pytest.raises(BuildCancelled):
            index_create(index=INDEX)
    finally:
        build_abandoned.reset(token)
        holder.execute("COMMIT")
        holder.close()
    assert index_state(INDEX) is None
    assert _timeouts() == [("300ms", "5s")]
