"""Indexes for the trail's list by action and by resource type (the dashboard's audit page filters by both), built
without locking the trail out, as 0005 builds the patient_ids index.

`GET /api/v1/audit/?action=delete` (or a resource type rarely recorded) had no index to seek in: its page,
newest first by id, walked the whole trail backwards (or scanned it in parallel and sorted) testing each record:
2M records, 410-440 ms for a value no record has, growing with every record kept. (action, id) and
(resource_type, id) read that value's records newest first and stop at a page.

On PostgreSQL each index is created on the partitioned parent alone (ON ONLY: catalogue only, invalid for now),
then on each partition CONCURRENTLY (inserts go on) and attached; PostgreSQL marks the parent's valid once every
partition has its copy, and partitions created later get theirs from the parent. Not atomic (CONCURRENTLY cannot
run in a transaction), so every step is idempotent: a run cut short is run again. SQLite (the embedded default)
builds them plainly.
"""

from django.db import migrations, models

from apps.audit.partition_indexes import build_partitioned_indexes, drop_partitioned_indexes

# Written out, not derived from the model: a migration must keep building what it built when it was written.
INDEXES = {
    "audit_event_action": ('("action", "id" DESC)', "action_id_idx"),
    "audit_event_resource": ('("resource_type", "id" DESC)', "resource_type_id_idx"),
}


def build_indexes(apps, schema_editor) -> None:
    build_partitioned_indexes(schema_editor, INDEXES)


def drop_indexes(apps, schema_editor) -> None:
    drop_partitioned_indexes(schema_editor, INDEXES)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0009_archive")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(build_indexes, drop_indexes)],
            state_operations=[
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(fields=["action", "-id"], name="audit_event_action"),
                ),
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(fields=["resource_type", "-id"], name="audit_event_resource"),
                ),
            ],
        ),
    ]
