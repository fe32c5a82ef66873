"""Refuse to migrate the audit trail backwards once it holds records.

Reversing 0001 drops the event table: `migrate audit zero`, typed while troubleshooting a deployment, would
destroy the whole trail (kept for years by law) and the next `migrate` would start a new one that verifies as
intact. Every backward migration of the app reverses this one first, so the refusal comes before anything
is undone. An empty trail (a fresh or flushed database) migrates both ways."""

from django.db import migrations


def refuse_over_records(apps, schema_editor) -> None:
    if apps.get_model("audit", "AuditEvent").objects.exists():
        raise RuntimeError(
            "The audit trail holds records: its migrations are not reversed (reversing 0001 drops the table). "
            "Restore a backup taken before the migration instead."
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_patient_ids_index")]

    operations = [migrations.RunPython(migrations.RunPython.noop, refuse_over_records)]
