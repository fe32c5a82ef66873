"""The index builds of the audit trail's migrations (0010, 0011): an index on the partitioned trail built without
locking it out. Each index is created on the parent alone (ON ONLY: catalogue only, invalid for now), then on each
partition CONCURRENTLY (inserts go on) and attached; PostgreSQL marks the parent's valid once every partition has its
copy, and partitions created later get theirs from the parent. Not atomic (CONCURRENTLY cannot run in a
transaction), so every step is idempotent: a run cut short is run again, an invalid copy it left is dropped and
built again. SQLite (the embedded default) builds them plainly.

Migrations call it: what it builds for a given list of indexes must stay what it built when they were written.
"""

import time

from django.db import OperationalError

PARENT = "audit_auditevent"

# The two catalogue steps on the parent (CREATE INDEX ... ON ONLY takes a SHARE lock on the trail, ATTACH a SHARE
# UPDATE EXCLUSIVE lock on the partition) wait in the lock queue behind any open writer transaction, and every audit
# insert then queues behind them: each gives up after LOCK_TIMEOUT (audit_partitions_ensure's PARTITION_LOCK_TIMEOUT),
# is tried LOCK_ATTEMPTS times, then the migration stops for a rerun. Written out: a migration keeps what it did.
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 3
LOCK_RETRY_PAUSE_S = 1.0


def _with_lock_timeout(cursor, sql: str) -> None:
    """Runs `sql` (autocommit: the migration is not atomic) waiting at most LOCK_TIMEOUT for its locks, a few times."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [LOCK_TIMEOUT])
        try:
            cursor.execute(sql)
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            if attempt == LOCK_ATTEMPTS:
                raise RuntimeError(
                    f"{sql.split(' ON ')[0]}: the audit trail's lock was not granted within {LOCK_TIMEOUT}, "
                    f"{LOCK_ATTEMPTS} times (a writer transaction kept open?); nothing is half done: "
                    "run migrate again."
                ) from exc
            time.sleep(LOCK_RETRY_PAUSE_S * attempt)
        finally:
            cursor.execute("RESET lock_timeout")


def partition_index_name(partition: str, suffix: str) -> str:
    # The name PostgreSQL gives the copy a partition created later gets, so every partition's reads alike.
    return f"{partition}_{suffix}"[:63]


def _partitions_without(cursor, index: str) -> list[str]:
    cursor.execute(
        """
        SELECT part.relname FROM pg_inherits inh JOIN pg_class part ON part.oid = inh.inhrelid
        WHERE inh.inhparent = to_regclass(%s) AND NOT EXISTS (
            SELECT 1 FROM pg_inherits attached JOIN pg_index child ON child.indexrelid = attached.inhrelid
            WHERE attached.inhparent = to_regclass(%s) AND child.indrelid = part.oid
        )
        ORDER BY part.relname
        """,
        [PARENT, index],
    )
    return [row[0] for row in cursor.fetchall()]


def _is_valid(cursor, name: str) -> bool | None:
    """True or False for an index of that name, None for none."""
    cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return None if row is None else row[0]


def build_partitioned_indexes(schema_editor, indexes: dict[str, tuple[str, str]]) -> None:
    """Build `indexes` (name: (columns SQL, the suffix of each partition's copy)) on the trail and each partition."""
    vendor = schema_editor.connection.vendor
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        if vendor != "postgresql":
            for index, (columns, _) in indexes.items():
                cursor.execute(f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(PARENT)} {columns}")
            return
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        partitioned = cursor.fetchone()[0] == "p"
        for index, (columns, suffix) in indexes.items():
            if not partitioned:  # 0001 always partitions it: one concurrent build
                cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(index)} ON {quote(PARENT)} {columns}")
                continue
            _with_lock_timeout(cursor, f"CREATE INDEX IF NOT EXISTS {quote(index)} ON ONLY {quote(PARENT)} {columns}")
            # Listed after the parent's index exists: a partition created from here on comes with its copy.
            for partition in _partitions_without(cursor, index):
                child = partition_index_name(partition, suffix)
                if _is_valid(cursor, child) is False:
                    # Left by a concurrent build cut short; IF NOT EXISTS would keep it, and an invalid index
                    # attached would leave the parent's invalid.
                    cursor.execute(f"DROP INDEX CONCURRENTLY {quote(child)}")
                cursor.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(child)} ON {quote(partition)} {columns}"
                )
                _with_lock_timeout(cursor, f"ALTER INDEX {quote(index)} ATTACH PARTITION {quote(child)}")
            if not _is_valid(cursor, index):
                # Not recorded as applied: the next `migrate` builds what is missing.
                raise RuntimeError(
                    f"{index} is not valid on {PARENT}: a partition's copy is missing or invalid; run migrate again."
                )


def drop_partitioned_indexes(schema_editor, indexes: dict[str, tuple[str, str]]) -> None:
    """Drop `indexes` from the trail, with every partition's copy (attached or left by a build cut short)."""
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for index, (_, suffix) in indexes.items():
            # Takes the attached partitions' copies with it; catalogue only, no scan.
            cursor.execute(f"DROP INDEX IF EXISTS {quote(index)}")
            if schema_editor.connection.vendor != "postgresql":
                continue
            cursor.execute(
                "SELECT part.relname FROM pg_inherits inh JOIN pg_class part ON part.oid = inh.inhrelid "
                "WHERE inh.inhparent = to_regclass(%s)",
                [PARENT],
            )
            for (partition,) in cursor.fetchall():  # a copy a cut-short run built but never attached
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(partition_index_name(partition, suffix))}")
