"""Index usage with a read replica (DATABASE_REPLICA_URL): each server counts only its own scans, so an
index serving every read on the replica showed 0 scans on the primary and was called unused. A real
streaming replica of a private primary, both started by the test."""

import psycopg
import pytest
from django.db import connections

from apps.optimizer.database import index_usage, recommendations_for
from tests.helpers import free_port, wait_for
from tests.postgres import private_postgres


@pytest.fixture(scope="module")
def primary_and_replica():
    """A primary and its streaming replica; yields their ports."""
    with private_postgres() as primary, private_postgres(replica_of=primary) as replica:
        yield {"primary": primary.port, "replica": replica.port}


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
