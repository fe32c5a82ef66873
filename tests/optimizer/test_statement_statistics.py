"""pg_stat_statements on a PostgreSQL server of the test's own that preloads it (the suite's server does
not): statements quoted without their literals, and a role that may not create the extension."""

import psycopg
import pytest

from apps.optimizer.database import statement_statistics
from tests.postgres import private_postgres

MRN = "MRN-77410023"


@pytest.fixture(scope="module")
def preloading_postgres():
    """A server with shared_preload_libraries=pg_stat_statements; yields its address."""
    with private_postgres("shared_preload_libraries=pg_stat_statements") as server:
        yield server.connect_kwargs


def test_statements_are_quoted_without_their_literals(preloading_postgres):
    """A utility statement keeps its values in pg_stat_statements before PostgreSQL 16 (DECLARE ... CURSOR,
    EXPLAIN, COPY (SELECT)): the report quoted the MRN a server-side cursor looked up."""
    with psycopg.connect(**preloading_postgres, user="postgres", autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        db.execute("CREATE TABLE clinical_patient (id int, mrn text)")
        with db.transaction():
            db.execute(f"DECLARE c CURSOR FOR SELECT id FROM clinical_patient WHERE mrn = '{MRN}' AND id = 40017")  # noqa: S608
        db.execute(f"EXPLAIN SELECT id FROM clinical_patient WHERE mrn = $${MRN}$$")  # noqa: S608
        found = statement_statistics(db.cursor(), limit=100)
    assert found["available"], found
    quoted = [statement["query"] for statement in found["statements"]]
    assert any("DECLARE c CURSOR" in query and "mrn = ?" in query for query in quoted), quoted
    assert not any(MRN in query or "40017" in query for query in quoted), quoted


def test_a_measuring_run_never_creates_the_extension_and_says_who_should(preloading_postgres):
    """A database without the extension had it created by the first run, dry runs and the nightly schedule
    included: a schema change on the hospital's database that nobody applied. Now the report says what to run."""
    with psycopg.connect(**preloading_postgres, user="postgres", autocommit=True) as db:
        db.execute("CREATE DATABASE dry_app")
    try:
        with psycopg.connect(**{**preloading_postgres, "dbname": "dry_app"}, user="postgres", autocommit=True) as db:
            found = statement_statistics(db.cursor())
            assert db.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchall() == []
        assert not found["available"] and "CREATE EXTENSION pg_stat_statements" in found["reason"], found
    finally:
        with psycopg.connect(**preloading_postgres, user="postgres", autocommit=True) as db:
            db.execute("DROP DATABASE dry_app")


def test_a_role_that_may_not_create_the_extension_gets_a_reason_not_a_failed_step(preloading_postgres):
    with psycopg.connect(**preloading_postgres, user="postgres", autocommit=True) as db:
        db.execute("CREATE DATABASE plain_app")
        db.execute("CREATE ROLE app LOGIN")
    try:
        with psycopg.connect(**{**preloading_postgres, "dbname": "plain_app"}, user="app", autocommit=True) as db:
            found = statement_statistics(db.cursor())
            assert db.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable
        assert not found["available"] and "CREATE EXTENSION" in found["reason"]
    finally:
        with psycopg.connect(**preloading_postgres, user="postgres", autocommit=True) as db:
            db.execute("DROP DATABASE plain_app")
            db.execute("DROP ROLE app")
