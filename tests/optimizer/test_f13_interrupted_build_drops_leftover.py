"""`optimize database --apply --inline` stopped by SIGTERM (or Ctrl-C) while CREATE INDEX CONCURRENTLY waited
left the index INVALID (written on every change, read by no query) until some later --apply: only a failed
build (DatabaseError) dropped its leftover, and Terminated is a KeyboardInterrupt. The build is made to wait,
for real, on a lock the test's own session holds; the signal is sent once PostgreSQL shows it waiting."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO_ROOT, database_url
from tests.optimizer.support import INDEX, connect, index_state, sql

pytestmark = [
    pytest.mark.django_db(transaction=True),  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    pytest.mark.usefixtures("designed_indexes_restored"),
]


def _until(check, what: str, timeout: float = 120):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _statement_waiting(observer, prefix: str) -> bool:
    row = observer.execute(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
        "AND wait_event_type = 'Lock' AND query ILIKE %s",
        [prefix + "%"],
    ).fetchone()
    return row is not None


def test_sigterm_during_a_waiting_build_drops_its_invalid_index(data, tmp_path):
    sql(f"DROP INDEX {INDEX}")
    observer, holder = connect(), connect()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE clinical_observation IN ROW EXCLUSIVE MODE")  # the build waits for this writer
    out = (tmp_path / "out").open("w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "optimize", "database", "--apply", "--inline"],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _until(
            lambda: _statement_waiting(observer, "CREATE INDEX CONCURRENTLY") or process.poll() is not None,
            "the build to wait on the lock",
        )
        assert process.poll() is None, "optimize ended before its build waited"
        assert index_state(INDEX) == (False,)  # the build's index, invalid while it waits
        process.send_signal(signal.SIGTERM)
        # The drop of the leftover waits for the same writer: let it go once the drop waits (or the run ended).
        _until(
            lambda: _statement_waiting(observer, "DROP INDEX CONCURRENTLY") or process.poll() is not None,
            "the leftover to be dropped or optimize to end",
        )
        holder.execute("COMMIT")
        process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        holder.close()
        observer.close()
    out.seek(0)
    output = out.read()
    assert process.returncode == 2, output
    assert "Terminated (SIGTERM)" in output
    assert index_state(INDEX) is None, "the interrupted build left its invalid index behind"
