"""The patients a multi-patient response disclosed (`patient_ids`), and its index.

Adding a nullable column is a catalogue change only, on the partitioned table too (every partition gets
it). The GIN index is partial (NOT NULL), so the single-patient reads that make most of the trail never
enter it; on the partitioned table PostgreSQL builds it on each partition, and partitions created later
get it from the parent. SQLite (the embedded default) has no GIN: it keeps the column and scans.

Reversing it would drop lists that records' seals cover (`audit verify` would then call them edited), so it
is refused once any record has one."""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations
from django.db.models import Q

import apps.audit.models
from apps.core.migration_operations import PostgresOnlyAddIndex


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
        PostgresOnlyAddIndex(
            model_name="auditevent",
            index=GinIndex(
                condition=Q(patient_ids__isnull=False),
                fields=["patient_ids"],
                name="audit_event_patient_ids",
                opclasses=["jsonb_path_ops"],
            ),
        ),
        # Last, so it runs first on the way back.
        migrations.RunPython(migrations.RunPython.noop, refuse_to_drop_sealed_lists),
    ]
