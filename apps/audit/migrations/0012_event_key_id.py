"""Each record names the chain key that sealed it (AuditEvent.key_id), so keys can be rotated: records sealed with an
old key keep verifying against AUDIT_CHAIN_KEY_FALLBACKS, and one sealed with an old key after a newer one is found.

A nullable column without a default: on PostgreSQL a catalogue-only change (no partition is rewritten, existing
records read NULL, which their HMAC never covered). Its ACCESS EXCLUSIVE lock on the trail still queues behind any
open writer transaction, and every audit insert would queue behind it: it waits at most partition_indexes'
LOCK_TIMEOUT, a few times, then the migration stops for a rerun (IF NOT EXISTS: a rerun is harmless).
"""

from django.db import migrations, models

from apps.audit.partition_indexes import _with_lock_timeout

ADD_COLUMN = 'ALTER TABLE "audit_auditevent" ADD COLUMN IF NOT EXISTS "key_id" varchar(16) NULL'


def _field() -> models.CharField:
    field = models.CharField(max_length=16, null=True, blank=True)
    field.set_attributes_from_name("key_id")
    return field


def add_column(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            _with_lock_timeout(cursor, ADD_COLUMN)
        return
    # SQLite: ADD COLUMN too (a nullable column needs no table rebuild, which would drop its triggers); kept by a
    # reversal, so present already when migrated forward again.
    model = apps.get_model("audit", "AuditEvent")
    with schema_editor.connection.cursor() as cursor:
        columns = schema_editor.connection.introspection.get_table_description(cursor, model._meta.db_table)
    if "key_id" not in {column.name for column in columns}:
        schema_editor.add_field(model, _field())


def keep_column(apps, schema_editor) -> None:
    """Reversed, the column stays: dropping it would lose which key sealed each record since, and every one of them
    would fail its HMAC for good. Code before this migration never names it (its inserts leave it NULL)."""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0011_patient_page_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_column, keep_column)],
            state_operations=[
                migrations.AddField(
                    model_name="auditevent",
                    name="key_id",
                    field=models.CharField(
                        blank=True, help_text="Fingerprint of the key that sealed it.", max_length=16, null=True
                    ),
                )
            ],
        )
    ]
