"""The flush after each transactional test, truncating only the tables that hold rows.

Django's TransactionTestCase empties the database after each such test with one TRUNCATE of every table
(some 60 here, with their indexes): about 1 s of a 1.2 to 1.8 s teardown on the CI machine, after each of
the suite's 500 and more transactional tests, though a test writes to a few. Here one statement locks every
table as that TRUNCATE would (ACCESS EXCLUSIVE: no session writes while it looks, none keeps a row the old
flush would have emptied), truncates those that hold a row and the tables whose foreign keys point at them
(as TRUNCATE asks), and leaves the empty ones as they are. The database after it is the same: empty. Only
the tests' teardown flush does this; `manage.py flush` (and a test that calls it) is the product's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import TransactionTestCase

_FLUSH = """DO $flush$
DECLARE
    listed regclass[] := ARRAY[{listed}]::regclass[];
    held regclass[] := '{{}}';
    more regclass[];
    found boolean;
    t regclass;
BEGIN
    LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE;
    FOREACH t IN ARRAY listed LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', t) INTO found;
        IF found THEN
            held := held || t;
        END IF;
    END LOOP;
    LOOP
        SELECT coalesce(array_agg(DISTINCT c.conrelid::regclass), '{{}}') INTO more FROM pg_constraint c
         WHERE c.contype = 'f' AND c.confrelid = ANY(held) AND c.conrelid = ANY(listed)
           AND NOT c.conrelid = ANY(held);
        EXIT WHEN cardinality(more) = 0;
        held := held || more;
    END LOOP;
    IF cardinality(held) > 0 THEN
        EXECUTE 'TRUNCATE ' || (SELECT string_agg(h::text, ', ') FROM unnest(held) h);
    END IF;
END
$flush$"""


def held_tables_flush_sql(operations: DatabaseOperations, tables: list[str]) -> list[str]:
    """The one statement that empties `tables` as TRUNCATE of them all would, truncating the non-empty ones."""
    quoted = [operations.quote_name(table) for table in tables]
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in quoted)
    return [_FLUSH.format(listed=listed, tables=", ".join(quoted))]


@contextmanager
def teardown_flush_of_held_tables() -> Iterator[None]:
    """While it lasts, TransactionTestCase's teardown flush (no sequences reset, no CASCADE) truncates held
    tables only; any other flush goes through Django's own SQL."""
    original_sql_flush = DatabaseOperations.sql_flush
    original_teardown = TransactionTestCase._fixture_teardown
    tearing_down = False

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if tearing_down and tables and not reset_sequences and not allow_cascade:
            return held_tables_flush_sql(self, list(tables))
        return original_sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)

    def fixture_teardown(self):
        nonlocal tearing_down
        tearing_down = True
        try:
            return original_teardown(self)
        finally:
            tearing_down = False

    DatabaseOperations.sql_flush = sql_flush
    TransactionTestCase._fixture_teardown = fixture_teardown
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = original_sql_flush
        TransactionTestCase._fixture_teardown = original_teardown


# A schema of its own: Django's introspection (the search_path) never lists its table, so no flush empties it.
SEEDED_ROWS_SCHEMA = "pytest_seeded_rows"
_CREATE_DB_ADVICE = "run pytest once with --create-db (it migrates a new test database), then --reuse-db again"


def seeded_rows_kept(started: datetime, alias: str = "default") -> None:
    """Under --reuse-db, the test database as its migrations left it, the rows data migrations seed included.

    A transactional test's teardown flush empties every table, and migrate on a kept database has nothing to
    apply, so the next --reuse-db run lacked the seeded rows (cache and rate-limit policies, thresholds, beat's
    schedules, the roles' groups as migrated) and its tests of them failed. The first run on a new database keeps
    them (Django's serialization, as serialized_rollback takes it) in a table of their own; each later run empties
    the database and loads them again. A kept database migrated since (new migrations) or from before this
    (`started`: when this run began) cannot be told apart from an emptied one: the run stops, saying so."""
    from django.apps import apps as django_apps
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connections, transaction

    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SEEDED_ROWS_SCHEMA}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {SEEDED_ROWS_SCHEMA}.kept (migrations text, contents text)")
        cursor.execute(
            "SELECT min(applied), string_agg(app || '.' || name, ' ' ORDER BY app, name) FROM django_migrations"
        )
        migrated_at, migrations = cursor.fetchone()
        cursor.execute(f"SELECT migrations, contents FROM {SEEDED_ROWS_SCHEMA}.kept")  # noqa: S608 - a constant
        kept = cursor.fetchone()
    if kept is None:
        if migrated_at < started:
            pytest.exit(
                f"The kept test database holds no copy of its seeded rows (made before them): {_CREATE_DB_ADVICE}."
            )
        contents = connection.creation.serialize_db_to_string()
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {SEEDED_ROWS_SCHEMA}.kept VALUES (%s, %s)", [migrations, contents])  # noqa: S608
        return
    if kept[0] != migrations:
        pytest.exit(f"The kept test database was migrated since its seeded rows were kept: {_CREATE_DB_ADVICE}.")
    call_command("flush", verbosity=0, interactive=False, database=alias, inhibit_post_migrate=True)
    connection.creation.deserialize_db_from_string(kept[1])
    # Each row loaded sends its post_save, whose receivers write rows the migrations had not (beat's change
    # marker, a cache policy's scope generation): those tables are emptied again.
    models = [django_apps.get_model(label) for label in {row["model"] for row in json.loads(kept[1])}]
    models += [field.remote_field.through for model in models for field in model._meta.many_to_many]
    seeded = {model._meta.db_table for model in models}
    others = [t for t in connection.introspection.django_table_names(only_existing=True) if t not in seeded]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.allow_truncate', 'on', true)")  # as the flush command does
        for statement in held_tables_flush_sql(connection.ops, others):
            cursor.execute(statement)
        # The flush restarted every sequence and the load kept the rows' ids: each seeded table's sequence goes
        # past its ids (setval to max(id), as loaddata does), or the next row created there takes a seeded id.
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)
