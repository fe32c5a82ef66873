"""The patients a multi-patient response disclosed (`patient_ids`).

Adding a nullable column is a catalogue change only, on the partitioned table too (every partition gets
it). Its index is 0005's: built here, inside this transaction, it held the ACCESS EXCLUSIVE lock AddField
takes on the trail (and so every audited read and write) while it scanned every partition.

Reversing it would drop lists that records' seals cover (`audit verify` would then call them edited), so it
is refused once any record has one."""

from django.db import migrations

import apps.audit.models


def refuse_to_drop_sealed_lists(apps, schema_editor) -> None:
    if apps.get_model("audit", "AuditEvent").objects.filter(patient_ids__isnull=False).exists():
        raise RuntimeError(
            "audit records name disclosed patients in patient_ids, which their seals cover: dropping the column "
            "would make `audit verify` report them as edited. Not reversible once used."
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_truncate_guards")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="patient_ids",
            field=apps.audit.models.PatientIdsField(
                blank=True, help_text="Internal ids of every patient a multi-patient response disclosed.", null=True
            ),
        ),
        # Last, so it runs first on the way back.
        migrations.RunPython(migrations.RunPython.noop, refuse_to_drop_sealed_lists),
    ]
