"""Migration 0010's catalogue steps on the trail (CREATE INDEX ... ON ONLY the parent: a SHARE lock; ATTACH) had no
lock_timeout: while any writer transaction was open on the trail the migration waited in the lock queue, and every
audit insert (each PHI request's) queued behind it, for as long as that transaction lasted. Now each step waits at
most its lock timeout, is tried a few times, and the migration stops asking for a rerun."""

import importlib
import threading
import time

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import OperationalError, connection, connections

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions and lock queues are PostgreSQL's"),
]

migration = importlib.import_module("apps.audit.migrations.0010_action_and_resource_type_indexes")


def _valid(index: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index])
        row = cursor.fetchone()
        return None if row is None else row[0]


def test_an_open_writer_transaction_neither_stalls_audit_writes_nor_the_migration():
    call_command("migrate", "audit", "0009", verbosity=0)
    assert _valid("audit_event_action") is None
    writer = connections.create_connection("default")  # a request that audited and keeps its transaction open
    other = connections.create_connection("default")  # the next request's audit insert
    outcome: dict[str, object] = {}

    def run_migration() -> None:
        try:
            with connection.schema_editor(atomic=False) as editor:
                migration.build_indexes(apps, editor)
        except Exception as exc:  # noqa: BLE001 - what it raised is the assertion
            outcome["error"] = exc
        finally:
            connection.close()

    try:
        writer.set_autocommit(False)
        with writer.cursor() as cursor:
            cursor.execute('LOCK TABLE "audit_auditevent" IN ROW EXCLUSIVE MODE')
        worker = threading.Thread(target=run_migration)
        worker.start()
        with other.cursor() as cursor:
            # Wait until the migration is queued on the trail's lock, then take the lock an insert takes.
            for _ in range(200):
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'audit_auditevent'::regclass AND NOT granted"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            cursor.execute("SET lock_timeout = '10s'")  # well past the migration's 2 s: a stall, not a wait
            try:
                cursor.execute('BEGIN; LOCK TABLE "audit_auditevent" IN ROW EXCLUSIVE MODE; COMMIT')
                outcome["insert"] = "granted"
            except OperationalError as exc:
                outcome["insert"] = str(exc)
                cursor.execute("ROLLBACK")
        worker.join(timeout=60)
        writer.rollback()
        worker.join(timeout=60)
        assert not worker.is_alive()
    finally:
        writer.close()
        other.close()
    assert outcome["insert"] == "granted", outcome
    assert "run migrate again" in str(outcome.get("error")), outcome
    call_command("migrate", "audit", verbosity=0)  # the writer gone, the rerun finishes
    assert _valid("audit_event_action") is True and _valid("audit_event_resource") is True
