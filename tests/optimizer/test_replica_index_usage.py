"""Index usage with a read replica (DATABASE_REPLICA_URL): each server counts only its own scans, so an
index serving every read on the replica showed 0 scans on the primary and was called unused. A real
streaming replica of a private primary, both started by the test."""

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.db import connections

from apps.optimizer.database import index_usage, recommendations_for
from tests.helpers import free_port, wait_for
from tests.reliability.test_faults import PG_BIN, _as_postgres


@pytest.fixture(scope="module")
def primary_and_replica():
    assert PG_BIN is not None, "PostgreSQL server binaries are needed (apt-get install postgresql)"
    data = Path(tempfile.mkdtemp(prefix="pg-replica-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    ports = {"primary": free_port(), "replica": free_port()}
    init = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data / "primary"), "-A", "trust", "-U", "postgres",
                        "--no-sync")  # fmt: skip
    assert init.returncode == 0, init.stderr

    def start(name: str) -> tuple:
        options = f"'-p {ports[name]} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off'"
        pg_ctl = (str(PG_BIN / "pg_ctl"), "-D", str(data / name), "-o", options, "-l", str(data / f"{name}.log"), "-w")
        started = _as_postgres(*pg_ctl, "start")
        assert started.returncode == 0, started.stderr + (data / f"{name}.log").read_text()
        return pg_ctl

    servers = [start("primary")]
    backup = _as_postgres(str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports["primary"]), "-U",
                          "postgres", "-D", str(data / "replica"), "-R", "-X", "stream")  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    servers.append(start("replica"))
    yield ports
    for pg_ctl in servers:
        _as_postgres(*pg_ctl, "-m", "immediate", "stop")
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def aliases(primary_and_replica, django_db_blocker):
    """Two aliases as settings would make them from DATABASE_URL and DATABASE_REPLICA_URL (servers of the
    test's own, outside the test database pytest-django guards)."""
    base = {**connections.settings["default"], "NAME": "postgres", "HOST": "127.0.0.1", "OPTIONS": {}, "TEST": {}}
    added = {"opt_primary": primary_and_replica["primary"], "opt_replica": primary_and_replica["replica"]}
    for alias, port in added.items():
        connections.settings[alias] = {**base, "PORT": port}
    with django_db_blocker.unblock():
        yield connections.settings
    for alias in added:
        if alias in connections:
            connections[alias].close()
            del connections[alias]
        connections.settings.pop(alias, None)


def _connect(port: int) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)


def test_scans_on_the_replica_count_and_an_index_read_there_is_not_called_unused(primary_and_replica, aliases):
    with _connect(primary_and_replica["primary"]) as primary:
        primary.execute("CREATE TABLE clinical_demo (id int PRIMARY KEY, code text)")
        primary.execute("INSERT INTO clinical_demo SELECT n, md5(n::text) FROM generate_series(1, 2000) n")
        primary.execute("CREATE INDEX clinical_demo_code ON clinical_demo (code)")
    with _connect(primary_and_replica["replica"]) as replica:
        wait_for(
            lambda: replica.execute("SELECT to_regclass('clinical_demo_code')").fetchone()[0],
            30,
            "the index to reach the replica",
        )
        replica.execute("SET enable_seqscan = off")
        replica.execute("SELECT id FROM clinical_demo WHERE code = md5('7')").fetchall()

    def scans() -> dict:
        return {row["index"]: row for row in index_usage(primary="opt_primary", replica="opt_replica")}

    # Statistics reach the view within a second.
    wait_for(lambda: scans()["clinical_demo_code"]["scans"] > 0, 30, "the replica's scan to be counted")
    usage = scans()["clinical_demo_code"]
    assert usage["replica_scans"] == usage["scans"] >= 1
    with _connect(primary_and_replica["primary"]) as primary:
        [(on_primary,)] = primary.execute(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'clinical_demo_code'"
        ).fetchall()
    assert on_primary == 0  # what the optimizer read before, and called unused


def test_a_replica_that_cannot_be_read_calls_no_index_unused(primary_and_replica, aliases):
    aliases["opt_replica"] = {**aliases["opt_replica"], "PORT": free_port()}  # nothing listens there
    rows = index_usage(primary="opt_primary", replica="opt_replica")
    assert rows and all(row["scans_incomplete"] for row in rows)
    findings = {"missing_indexes": [], "table_scans": [],
                "index_usage": [{**row, "scans": 0, "bytes": 2**30} for row in rows]}  # fmt: skip
    assert not [draft for draft in recommendations_for(findings) if draft.kind == "review_unused_index"]
