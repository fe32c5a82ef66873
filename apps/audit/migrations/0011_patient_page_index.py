"""The trail's (patient_id, id DESC) index: `/api/v1/audit/?patient_id=` pages a patient's own records newest
first from it (audit_event_pages), 51 at a time, where a patient in 5% of the trail had the page scan the whole
partition and sort (400k records: 7,038 pages, 44 ms; 172 ms at 50%; 36 pages, 0.4 ms before a55c76d).

Built as 0010 builds its indexes (and with the same safeguards): on the partitioned parent alone (ON ONLY), then on
each partition CONCURRENTLY, attached; an invalid copy left by a build cut short is dropped and built again; the
catalogue steps wait at most LOCK_TIMEOUT for the trail's locks, a few times, then ask for a rerun. Every step is
idempotent. SQLite (the embedded default) builds it plainly.
"""

from django.db import migrations, models

from apps.audit.partition_indexes import build_partitioned_indexes, drop_partitioned_indexes

# Written out, not derived from the model: a migration must keep building what it built when it was written.
INDEXES = {
    "audit_event_patient_page": ('("patient_id", "id" DESC)', "patient_id_id_idx"),
}


def build_indexes(apps, schema_editor) -> None:
    build_partitioned_indexes(schema_editor, INDEXES)


def drop_indexes(apps, schema_editor) -> None:
    drop_partitioned_indexes(schema_editor, INDEXES)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0010_action_and_resource_type_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(build_indexes, drop_indexes)],
            state_operations=[
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(fields=["patient_id", "-id"], name="audit_event_patient_page"),
                ),
            ],
        ),
    ]
