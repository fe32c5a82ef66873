"""`updated_at` follows every write, not only the ORM's (review h): on PostgreSQL a BEFORE UPDATE trigger on the four
stamped tables sets it to statement_timestamp() where an UPDATE left it as it was: raw SQL, a bulk upsert that names
its fields, an older release's `save(update_fields=[...])` during a rolling upgrade. An UPDATE that sets it itself
(every ORM write of this release) is left alone; one that changes nothing fires no trigger (WHEN), so a retried
no-op write keeps the version. tests/clinical/test_b2_last_updated_every_write.py writes each way.

On SQLite the database default writes six fractional digits (StampNow), as Django writes a datetime: Now()'s
milliseconds sorted below the row's own lastUpdated. On PostgreSQL that default's SQL is unchanged.

The partial index on clinical_patient(updated_at) serves `Patient?_lastUpdated=` alone (a sync of changed
patients), which scanned every active patient. Reversed: the trigger, its function and the index are dropped.
"""

from django.db import migrations, models

import apps.clinical.models

TABLES = ("clinical_patient", "clinical_encounter", "clinical_observation", "clinical_medicationrequest")

CREATE = """
CREATE OR REPLACE FUNCTION clinical_stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := statement_timestamp();
    END IF;
    RETURN NEW;
END
$$;
""" + "".join(
    f"CREATE TRIGGER {table}_stamp BEFORE UPDATE ON {table} FOR EACH ROW "
    f"WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION clinical_stamp_updated_at();\n"
    for table in TABLES
)

DROP = "".join(f"DROP TRIGGER IF EXISTS {table}_stamp ON {table};\n" for table in TABLES) + (
    "DROP FUNCTION IF EXISTS clinical_stamp_updated_at();\n"
)


def on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":  # SQLite (`make run`): the ORM stamps every write
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0004_clinical_rows_updated_at"),
    ]

    operations = [
        *(
            migrations.AlterField(
                model_name=model_name,
                name="updated_at",
                field=models.DateTimeField(auto_now=True, db_default=apps.clinical.models.StampNow()),
            )
            for model_name in ("encounter", "medicationrequest", "observation")
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(
                condition=models.Q(("is_deleted", False)), fields=["updated_at"], name="clinical_patient_updated"
            ),
        ),
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP), elidable=False),
    ]
