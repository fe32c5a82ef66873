"""Migration 0005 builds the patient_ids index without locking the trail: on the parent alone, then
concurrently on each partition, attached; valid everywhere, and on partitions created afterwards."""

import importlib
from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.services import audit_partitions_ensure

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions and GIN are PostgreSQL's")

migration = importlib.import_module("apps.audit.migrations.0005_patient_ids_index")
PARENT, INDEX = migration.PARENT, migration.INDEX


def _partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [PARENT],
        )
        return [row[0] for row in cursor.fetchall()]


def _parent_index() -> tuple[bool, str] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = to_regclass(%s)", [INDEX]
        )
        return cursor.fetchone()


def _copies() -> dict[str, tuple[str, bool]]:
    """Each partition's copy attached to the parent's index: partition -> (index name, valid)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, c.relname, x.indisvalid FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid "
            "JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [INDEX],
        )
        return {table: (name, valid) for table, name, valid in cursor.fetchall()}


def _patient_ids_indexes(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s", [table, "%patient_ids%"]
        )
        return [row[0] for row in cursor.fetchall()]


def _assert_valid_everywhere() -> None:
    valid, definition = _parent_index()
    assert valid, definition
    assert "USING gin (patient_ids jsonb_path_ops) WHERE (patient_ids IS NOT NULL)" in definition
    partitions = _partitions()
    assert f"{PARENT}_default" in partitions and len(partitions) >= 5  # the default and 0002's four months
    assert set(_copies()) == set(partitions)
    assert all(valid for _, valid in _copies().values()), _copies()
    for partition in partitions:
        assert len(_patient_ids_indexes(partition)) == 1, partition  # never a second copy


@pytest.mark.django_db
def test_the_index_is_valid_on_the_parent_and_every_partition():
    _assert_valid_everywhere()
    assert _copies()[f"{PARENT}_default"][0] == migration.partition_index_name(f"{PARENT}_default")


@pytest.mark.django_db
def test_a_partition_created_after_the_migration_has_it():
    day = timezone.now().date().replace(day=1)
    year, month = divmod(day.month - 1 + 6, 12)  # past 0002's months, so the beat task creates it now
    month_start = date(day.year + year, month + 1, 1)
    [created] = audit_partitions_ensure(months_ahead=0, today=month_start)
    assert _copies()[created] == (migration.partition_index_name(created), True)  # the name 0005 gives its own
    _assert_valid_everywhere()


@pytest.mark.django_db(transaction=True)
def test_the_migration_builds_concurrently_reverses_and_is_run_again_safely():
    call_command("migrate", "audit", "0004", verbosity=0)
    assert _parent_index() is None
    assert all(_patient_ids_indexes(partition) == [] for partition in _partitions())

    with CaptureQueriesContext(connection) as queries:
        call_command("migrate", "audit", verbosity=0)
    # This index's builds (0010 builds the action and resource type indexes the same way, after it).
    creates = [sql for query in queries if (sql := query["sql"]).startswith("CREATE INDEX") and "patient_ids" in sql]
    # The parent alone (no partition scanned under its lock), then each partition without blocking inserts.
    assert creates[0].startswith(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON ONLY "{PARENT}"'), creates
    assert len(creates) == 1 + len(_partitions())
    assert all(sql.startswith("CREATE INDEX CONCURRENTLY") for sql in creates[1:]), creates
    _assert_valid_everywhere()

    # A run cut short: the parent's index made, one copy built but not attached, one left invalid by a
    # concurrent build that was cancelled (marked so by hand: the test database's owner is a superuser).
    call_command("migrate", "audit", "0004", verbosity=0)
    built, cancelled = _partitions()[:2]
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE INDEX "{INDEX}" ON ONLY "{PARENT}" {migration.DEFINITION}')
        for partition in (built, cancelled):
            name = migration.partition_index_name(partition)
            cursor.execute(f'CREATE INDEX "{name}" ON "{partition}" {migration.DEFINITION}')
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)",
            [migration.partition_index_name(cancelled)],
        )
    assert _parent_index()[0] is False
    call_command("migrate", "audit", verbosity=0)
    _assert_valid_everywhere()
    # Run once more over a finished one (0004 as first written built the index itself): nothing changes.
    before = _copies()
    from django.apps import apps

    with connection.schema_editor(atomic=False) as editor:
        migration.build_index(apps, editor)
    assert _copies() == before
