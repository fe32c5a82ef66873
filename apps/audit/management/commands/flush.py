"""Django's `flush`, able to empty the audit trail: its tables refuse TRUNCATE (migration 0003) except in a
transaction that sets `audit.allow_truncate`, which this does. Emptying the whole database is the only way
the trail goes; tests flush between transactional tests."""

from django.core.management.commands.flush import Command as DjangoFlush
from django.db import connections, transaction


class Command(DjangoFlush):
    help = DjangoFlush.help

    def handle(self, **options) -> None:
        database = options["database"]
        connection = connections[database]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with transaction.atomic(using=database):
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('audit.allow_truncate', 'on', true)")  # this transaction only
            super().handle(**options)
