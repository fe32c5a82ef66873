"""Setting rows' `updated_at` back, as a data repair (a restore's copy of a row) does. On PostgreSQL migration
0009's trigger raises a stamp at or below the row's own above it, so the repair disables the row trigger in its
transaction (as the table's owner; the table stays locked until the transaction ends: the test's)."""

from datetime import datetime

from django.db import connections, transaction
from django.db.models import QuerySet


def backdate(rows: QuerySet, at: datetime) -> int:
    connection = connections[rows.db]
    if connection.vendor != "postgresql":  # SQLite: no trigger, an explicit stamp is kept
        return rows.update(updated_at=at)
    table = connection.ops.quote_name(rows.model._meta.db_table)
    trigger = connection.ops.quote_name(f"{rows.model._meta.db_table}_stamp")
    with transaction.atomic(using=rows.db), connection.cursor() as cursor:
        # The test's own transaction still holds its inserts' deferred foreign-key checks, which ALTER TABLE refuses
        # to run beside: checked now (a repair's own transaction has none), deferred again after.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        try:
            return rows.update(updated_at=at)
        finally:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
