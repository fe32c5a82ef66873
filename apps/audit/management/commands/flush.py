"""Django's `flush`, able to empty the audit trail. On PostgreSQL its tables refuse TRUNCATE (migration 0003)
except in a transaction that sets `audit.allow_truncate`; on SQLite, where flush DELETEs, its triggers refuse
DELETE (migration 0008) except while `audit_flush_guard` has a row. This does either in its own transaction.
Emptying the whole database is the only way the trail goes; tests flush between transactional tests."""

from django.core.management.commands.flush import Command as DjangoFlush
from django.db import connections, transaction

SQLITE_FLUSH_GUARD_TABLE = "audit_flush_guard"


class Command(DjangoFlush):
    help = DjangoFlush.help

    def handle(self, **options) -> None:
        database = options["database"]
        connection = connections[database]
        if connection.vendor == "postgresql":
            with transaction.atomic(using=database):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('audit.allow_truncate', 'on', true)")  # this transaction only
                super().handle(**options)
            return
        if connection.vendor == "sqlite" and SQLITE_FLUSH_GUARD_TABLE in connection.introspection.table_names():
            with transaction.atomic(using=database):
                with connection.cursor() as cursor:
                    cursor.execute(f'INSERT INTO "{SQLITE_FLUSH_GUARD_TABLE}" ("flushing") VALUES (1)')  # noqa: S608
                super().handle(**options)
                with connection.cursor() as cursor:
                    cursor.execute(f'DELETE FROM "{SQLITE_FLUSH_GUARD_TABLE}"')  # noqa: S608
            return
        return super().handle(**options)
