"""SQLite (the embedded default): refuse UPDATE and DELETE of audit events and DELETE of a chain head, as the
PostgreSQL triggers of 0001 and 0003 do. Without them a raw `DELETE FROM audit_auditevent` went through there
(`audit verify` found it afterwards, but nothing refused it). A no-op on PostgreSQL.

SQLite has no TRUNCATE: `manage.py flush` empties tables with DELETE. The audit app's flush passes by putting a
row in `audit_flush_guard` inside its own transaction (no other connection sees it; a crash rolls it back), and
the DELETE triggers let a deletion through while that table has a row. Anyone who can write that row could drop
the triggers too, as on PostgreSQL: the triggers stop mistakes and casual edits; the chain's seals find the rest.

A later migration that makes SQLite rebuild the event table (an AlterField of a stored column) drops the
triggers with the old table: add them again after it (`audit verify` reports the table as WRITABLE)."""

from django.db import migrations

EVENT_TABLE = "audit_auditevent"
HEAD_TABLE = "audit_auditchainhead"
FLUSH_GUARD_TABLE = "audit_flush_guard"
FLUSHING = f'NOT EXISTS (SELECT 1 FROM "{FLUSH_GUARD_TABLE}")'  # noqa: S608 - fixed names
TRIGGERS = {
    "audit_event_append_only_update": f'BEFORE UPDATE ON "{EVENT_TABLE}"',
    "audit_event_append_only_delete": f'BEFORE DELETE ON "{EVENT_TABLE}" WHEN {FLUSHING}',
    "audit_chain_head_kept": f'BEFORE DELETE ON "{HEAD_TABLE}" WHEN {FLUSHING}',
}


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute(f'CREATE TABLE IF NOT EXISTS "{FLUSH_GUARD_TABLE}" ("flushing" integer NOT NULL)')
    for name, when in TRIGGERS.items():
        refusal = "audit chain heads are append-only" if "head" in name else "audit events are append-only"
        schema_editor.execute(f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, '{refusal}'); END")


def drop_triggers(apps, schema_editor):
    # 0006 refuses going back over records, but each migration commits on its own: this one, reversed first, must
    # refuse too, or the triggers would be gone before 0006 refused.
    if apps.get_model("audit", "AuditEvent").objects.exists():
        raise RuntimeError(
            "The audit trail holds records: its migrations are not reversed (reversing 0001 drops the table). "
            "Restore a backup taken before the migration instead."
        )
    if schema_editor.connection.vendor != "sqlite":
        return
    for name in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    schema_editor.execute(f'DROP TABLE IF EXISTS "{FLUSH_GUARD_TABLE}"')


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_anonymous_actor")]

    operations = [migrations.RunPython(add_triggers, drop_triggers)]
