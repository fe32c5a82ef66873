"""Under --reuse-db, the rows the migrations seeded, kept with the test database and loaded again each run.

A transactional test's teardown flush (tests/flush.py) empties every table, and migrate on a kept database has
nothing to apply, so a second --reuse-db run lacked the seeded rows (cache and rate-limit policies, thresholds,
beat's schedules, the roles' groups as migrated) and its tests of them failed. Without --reuse-db nothing here
runs: each run migrates a new database (tests/conftest.py, `_seeded_rows_under_reuse_db`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.flush import held_tables_flush_sql
from tests.helpers import REPO_ROOT

# A schema of its own: Django's introspection (the search_path) never lists its table, so no flush empties it.
SEEDED_ROWS_SCHEMA = "pytest_seeded_rows"
CREATE_DB_ADVICE = "run pytest once with --create-db (it migrates a new test database), then --reuse-db again"


def migrations_hash(root: Path = REPO_ROOT) -> str:
    """A hash of the apps' migration files, names and contents: a data migration edited in place keeps its name,
    and the copy kept from it is then out of date."""
    digest = hashlib.sha256()
    for path in sorted(root.glob("apps/*/migrations/*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def seeded_rows_kept(
    started: datetime, alias: str = "default", *, schema: str = SEEDED_ROWS_SCHEMA, source_hash: str | None = None
) -> None:
    """The test database as its migrations left it, the rows data migrations seed included.

    The first run on a new database keeps the seeded rows (Django's serialization, as serialized_rollback takes
    it) in a table of its own, with the migrations applied and `migrations_hash()` (`source_hash`); each later
    run empties the database and loads them again. A kept database migrated since (new migrations), whose
    migration files changed since (a migration edited in place), or from before this (`started`: when this run
    began) cannot be told apart from an emptied one: the run stops, asking for --create-db."""
    from django.apps import apps as django_apps
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connections, transaction

    source_hash = migrations_hash() if source_hash is None else source_hash
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {schema}.kept (migrations text, contents text)")
        # A copy kept before the hash was has none: it differs from every hash.
        cursor.execute(f"ALTER TABLE {schema}.kept ADD COLUMN IF NOT EXISTS migrations_hash text")
        cursor.execute(
            "SELECT min(applied), string_agg(app || '.' || name, ' ' ORDER BY app, name) FROM django_migrations"
        )
        migrated_at, migrations = cursor.fetchone()
        cursor.execute(f"SELECT migrations, migrations_hash, contents FROM {schema}.kept")  # noqa: S608 - a constant
        kept = cursor.fetchone()
    if kept is None:
        if migrated_at < started:
            pytest.exit(
                f"The kept test database holds no copy of its seeded rows (made before them): {CREATE_DB_ADVICE}."
            )
        contents = connection.creation.serialize_db_to_string()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {schema}.kept (migrations, migrations_hash, contents) VALUES (%s, %s, %s)",  # noqa: S608
                [migrations, source_hash, contents],
            )
        return
    if kept[0] != migrations:
        pytest.exit(f"The kept test database was migrated since its seeded rows were kept: {CREATE_DB_ADVICE}.")
    if kept[1] != source_hash:
        pytest.exit(
            "The migration files (apps/*/migrations/*.py) changed since the kept test database's seeded rows were"
            f" kept: {CREATE_DB_ADVICE}."
        )
    call_command("flush", verbosity=0, interactive=False, database=alias, inhibit_post_migrate=True)
    connection.creation.deserialize_db_from_string(kept[2])
    # Each row loaded sends its post_save, whose receivers write rows the migrations had not (beat's change
    # marker, a cache policy's scope generation): those tables are emptied again.
    models = [django_apps.get_model(label) for label in {row["model"] for row in json.loads(kept[2])}]
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
