"""The partial GIN index on `patient_ids`, built without locking the trail out.

Audit writes fail closed, so a lock that stops inserts into the trail stops every PHI read and write. A
plain CREATE INDEX on the partitioned table holds a SHARE lock on every partition while it scans each of
them. Instead, on PostgreSQL:

1. the index is created on the parent alone (ON ONLY): catalogue only, and invalid for now;
2. each partition gets its own index with CREATE INDEX CONCURRENTLY, which lets inserts go on;
3. each is attached to the parent's, which PostgreSQL marks valid once every partition has one.

Partitions created later (the beat task's `audit_partitions_ensure`) get it from the parent. Not atomic
(CONCURRENTLY cannot run in a transaction), so every step is idempotent: a run cut short is run again.
The index is partial (NOT NULL), so the single-patient reads that make most of the trail never enter it.
SQLite (the embedded default) has no GIN: it keeps the column and scans. Django's state gets the index on
every backend, so `makemigrations` stays quiet.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations
from django.db.models import Q

PARENT = "audit_auditevent"
INDEX = "audit_event_patient_ids"
# Written out, not derived from the model: a migration must keep building what it built when it was written.
DEFINITION = 'USING gin ("patient_ids" jsonb_path_ops) WHERE ("patient_ids" IS NOT NULL)'


def partition_index_name(partition: str) -> str:
    # The name PostgreSQL gives the copy a partition created later gets, so every partition's reads alike.
    return f"{partition}_patient_ids_idx"[:63]


def _partitions_without_the_index(cursor) -> list[str]:
    cursor.execute(
        """
        SELECT part.relname FROM pg_inherits inh JOIN pg_class part ON part.oid = inh.inhrelid
        WHERE inh.inhparent = to_regclass(%s) AND NOT EXISTS (
            SELECT 1 FROM pg_inherits attached JOIN pg_index child ON child.indexrelid = attached.inhrelid
            WHERE attached.inhparent = to_regclass(%s) AND child.indrelid = part.oid
        )
        ORDER BY part.relname
        """,
        [PARENT, INDEX],
    )
    return [row[0] for row in cursor.fetchall()]


def _index_is_valid(cursor, name: str) -> bool | None:
    """True or False for an index of that name, None for none."""
    cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return None if row is None else row[0]


def build_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        if cursor.fetchone()[0] != "p":  # not partitioned (0001 always partitions it): one concurrent build
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(INDEX)} ON {quote(PARENT)} {DEFINITION}")
            return
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {quote(INDEX)} ON ONLY {quote(PARENT)} {DEFINITION}")
        # Listed after the parent's index exists: a partition created from here on comes with its copy.
        for partition in _partitions_without_the_index(cursor):
            child = partition_index_name(partition)
            if _index_is_valid(cursor, child) is False:
                # Left by a concurrent build that was cut short; IF NOT EXISTS would keep it, and an invalid
                # index attached would leave the parent's invalid.
                cursor.execute(f"DROP INDEX CONCURRENTLY {quote(child)}")
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(child)} ON {quote(partition)} {DEFINITION}")
            cursor.execute(f"ALTER INDEX {quote(INDEX)} ATTACH PARTITION {quote(child)}")
        if not _index_is_valid(cursor, INDEX):
            # Not recorded as applied: the next `migrate` builds what is missing.
            raise RuntimeError(
                f"{INDEX} is not valid on {PARENT}: a partition's copy is missing or invalid; run migrate again."
            )


def drop_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        # Takes the attached partitions' copies with it; catalogue only, no scan.
        cursor.execute(f"DROP INDEX IF EXISTS {quote(INDEX)}")
        # A copy a cut-short run built but never attached.
        cursor.execute(
            "SELECT part.relname FROM pg_inherits inh JOIN pg_class part ON part.oid = inh.inhrelid "
            "WHERE inh.inhparent = to_regclass(%s)",
            [PARENT],
        )
        for (partition,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(partition_index_name(partition))}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0004_patient_ids")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(build_index, drop_index)],
            state_operations=[
                migrations.AddIndex(
                    model_name="auditevent",
                    index=GinIndex(
                        condition=Q(patient_ids__isnull=False),
                        fields=["patient_ids"],
                        name="audit_event_patient_ids",
                        opclasses=["jsonb_path_ops"],
                    ),
                ),
            ],
        ),
    ]
