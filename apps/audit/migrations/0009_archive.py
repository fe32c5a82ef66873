"""The archive records (`audit archive --drop`): what stands in for a monthly partition moved out to a file.

Append-only like the trail (0001, 0003, 0008): PostgreSQL refuses UPDATE and DELETE with a row trigger and
TRUNCATE with the guard of 0003 (which `manage.py flush` passes); SQLite refuses UPDATE and DELETE with triggers
that let the audit app's flush through. A deleted archive record would turn its records into gaps that `audit
verify` reports anyway; the triggers stop mistakes."""

from django.db import migrations, models

TABLE = "audit_auditarchive"
GUARD = "audit_refuse_truncate"
SQLITE_FLUSHING = 'NOT EXISTS (SELECT 1 FROM "audit_flush_guard")'
SQLITE_TRIGGERS = {
    "audit_archive_kept_update": f'BEFORE UPDATE ON "{TABLE}"',
    "audit_archive_kept_delete": f'BEFORE DELETE ON "{TABLE}" WHEN {SQLITE_FLUSHING}',
}


def add_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "CREATE OR REPLACE FUNCTION audit_archive_kept() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit archive records are append-only'; END $$"
        )
        schema_editor.execute(
            f'CREATE TRIGGER audit_archive_kept BEFORE UPDATE OR DELETE ON "{TABLE}" '
            "FOR EACH ROW EXECUTE FUNCTION audit_archive_kept()"
        )
        schema_editor.execute(
            f'CREATE TRIGGER {GUARD} BEFORE TRUNCATE ON "{TABLE}" FOR EACH STATEMENT EXECUTE FUNCTION {GUARD}()'
        )
    elif vendor == "sqlite":
        for name, when in SQLITE_TRIGGERS.items():
            schema_editor.execute(
                f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, 'audit archive records are append-only'); END"
            )


def drop_guards(apps, schema_editor):
    # Reversing this drops the archive records, what verify resumes the chains from: refused once there are any.
    # Without them it drops an empty table, so a rollback to the release before it (audit 0008) works on a trail
    # that holds records; 0008 and 0006, reversed next, still refuse going further back over them.
    if apps.get_model("audit", "AuditArchive").objects.exists():
        raise RuntimeError(
            "The audit trail has archived partitions (audit archive --drop): reversing this migration would drop "
            "their archive records, which audit verify resumes the chains from. Restore a backup taken before the "
            "migration instead, or keep the audit app at 0009 (the release before it runs on it)."
        )
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f'DROP TRIGGER IF EXISTS audit_archive_kept ON "{TABLE}"')
        schema_editor.execute(f'DROP TRIGGER IF EXISTS {GUARD} ON "{TABLE}"')
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_archive_kept()")
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_sqlite_append_only")]

    operations = [
        migrations.CreateModel(
            name="AuditArchive",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("partition", models.CharField(max_length=63)),
                ("range_start", models.DateTimeField()),
                ("range_end", models.DateTimeField()),
                ("file_name", models.CharField(max_length=255)),
                ("sha256", models.CharField(max_length=64)),
                ("row_count", models.BigIntegerField()),
                ("chains", models.JSONField(default=dict)),
                ("registered_chains", models.JSONField(default=list)),
                ("archived_by", models.CharField(max_length=150)),
                ("archived_at", models.DateTimeField()),
                ("seal", models.CharField(max_length=64)),
            ],
            options={
                "ordering": ["range_start"],
                "constraints": [models.UniqueConstraint(fields=["partition"], name="audit_archive_partition_unique")],
            },
        ),
        migrations.RunPython(add_guards, drop_guards),
    ]
