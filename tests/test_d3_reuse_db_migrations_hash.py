"""Under --reuse-db the kept copy of the seeded rows (tests/reuse_db.py) goes with a hash of the migration files:
a data migration edited in place keeps its name, and its copy, out of date, was loaded with no word. Run it
plain, then `--create-db` and `--reuse-db` twice: it passes each time (a copy with another hash is made in a
scratch schema, inside the test's transaction)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from tests.reuse_db import CREATE_DB_ADVICE, SEEDED_ROWS_SCHEMA, migrations_hash, seeded_rows_kept

SCRATCH = "pytest_seeded_rows_d3"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # before the test database was migrated: a first run keeps a copy


def _kept_hash(schema: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)", [schema])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(f"SELECT migrations_hash FROM {schema}.kept")  # noqa: S608 - a constant
        return cursor.fetchone()[0]


def test_the_hash_follows_the_migration_files_contents(tmp_path):
    migration = tmp_path / "apps" / "x" / "migrations" / "0002_seed.py"
    migration.parent.mkdir(parents=True)
    migration.write_text("ROWS = [1]\n")
    before = migrations_hash(tmp_path)
    assert migrations_hash(tmp_path) == before
    migration.write_text("ROWS = [1, 2]\n")
    assert migrations_hash(tmp_path) != before
    edited = migrations_hash(tmp_path)
    migration.rename(migration.with_name("0002_seed_renamed.py"))
    assert migrations_hash(tmp_path) not in {before, edited}


@pytest.mark.django_db
def test_the_kept_copy_goes_with_this_run_s_hash_under_reuse_db_only(django_db_keepdb):
    """A plain run migrates a new database and keeps no copy; --reuse-db keeps one with the files' hash."""
    if django_db_keepdb:
        assert _kept_hash(SEEDED_ROWS_SCHEMA) == migrations_hash()
    else:
        assert _kept_hash(SEEDED_ROWS_SCHEMA) is None


@pytest.mark.django_db
def test_a_changed_hash_stops_the_run_asking_for_create_db():
    seeded_rows_kept(LONG_AGO, schema=SCRATCH, source_hash="before the edit")
    assert _kept_hash(SCRATCH) == "before the edit"
    with pytest.raises(pytest.exit.Exception) as stopped:
        seeded_rows_kept(LONG_AGO, schema=SCRATCH, source_hash="after the edit")
    assert "migration files (apps/*/migrations/*.py) changed" in str(stopped.value)
    assert CREATE_DB_ADVICE in str(stopped.value)


@pytest.mark.django_db
def test_a_copy_kept_before_the_hash_stops_the_run_asking_for_create_db():
    """A copy kept by the code before this one has no hash column: it is out of date for any hash."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {SCRATCH}")
        cursor.execute(f"CREATE TABLE {SCRATCH}.kept (migrations text, contents text)")
        cursor.execute("SELECT string_agg(app || '.' || name, ' ' ORDER BY app, name) FROM django_migrations")
        cursor.execute(f"INSERT INTO {SCRATCH}.kept VALUES (%s, '[]')", [cursor.fetchone()[0]])  # noqa: S608
    with pytest.raises(pytest.exit.Exception, match="changed since"):
        seeded_rows_kept(LONG_AGO, schema=SCRATCH)
