"""An empty panel's version follows its members' retractions made outside the services (review h, round 2): a bulk
`.update(status=...)`, raw SQL, an older release's retract during a rolling upgrade. On PostgreSQL a STATEMENT-level
AFTER UPDATE trigger on clinical_observation reads the statement's transition tables (its old and new rows) and, once
per statement, stamps the empty panels at the instant of each vital-sign row whose status changed (same patient,
same effective_at, the panel's member codes as services._panels_touched picks them): one UPDATE a statement, never a
query a row, one index lookup (clinical_obs_patient_cat) an instant. Its own UPDATE (trigger depth 2) returns at
once. Retracting 49,820 rows at once: see the commit (about +0.3 s on a 2-core host).

Not covered: a member INSERTed outside the services (raw SQL, an older release's record during a rolling upgrade)
leaves its panels' version as it was until the next write to them. An INSERT trigger would make the loader's COPY
pay for every row it loads; the services stamp the panels of what they record.

The BEFORE UPDATE row trigger (0005) cannot tell `.update(updated_at=<its current value>)` from an UPDATE that left
the column alone: both are re-stamped. A data repair that must keep a stamp sets an explicit value (any other one
is kept), or keeps the exact current one only with the row trigger disabled in its transaction (`ALTER TABLE ...
DISABLE TRIGGER <table>_stamp`, as the table's owner); `save()` always writes now (auto_now).

SQLite: rows stamped before 0005 hold Now()'s millisecond text (`2024-01-02 03:04:05.678`), which sorts below the
six-digit text Django writes for the same instant (`_lastUpdated=eq|ge` missed them): it is padded to six digits on
the four stamped tables. Reversed: the trigger and its function are dropped; the padding stays (the same instants).
"""

from django.db import migrations

TABLES = ("clinical_patient", "clinical_encounter", "clinical_observation", "clinical_medicationrequest")

# codes.PANEL_MEMBER_CODES as of this migration: the vital-signs panel holds every other vital sign, the blood
# pressure panel its systolic, diastolic and mean pressures. selectors.EMPTY_PANEL: no value, no components.
CREATE = """
CREATE OR REPLACE FUNCTION clinical_stamp_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN  -- the UPDATE below, or one another trigger ran
        RETURN NULL;
    END IF;
    UPDATE clinical_observation AS panel SET updated_at = statement_timestamp()
    FROM (  -- one row an instant (a round's readings share one): a lookup an instant, not a changed row
        SELECT new_row.patient_id, new_row.effective_at,
               bool_or(new_row.code <> '85353-1') AS vital_member,
               bool_or(new_row.code IN ('8480-6', '8462-4', '8478-0')) AS pressure_member
        FROM clinical_member_new AS new_row JOIN clinical_member_old AS old_row ON old_row.id = new_row.id
        WHERE new_row.status IS DISTINCT FROM old_row.status AND new_row.category = 'vital-signs'
        GROUP BY new_row.patient_id, new_row.effective_at
    ) AS changed
    WHERE panel.patient_id = changed.patient_id
      AND panel.category = 'vital-signs'
      AND panel.effective_at = changed.effective_at
      AND panel.value IS NULL
      AND (panel.components IS NULL OR panel.components IN ('null'::jsonb, '[]'::jsonb, '{}'::jsonb))
      AND ((panel.code = '85353-1' AND changed.vital_member) OR (panel.code = '85354-9' AND changed.pressure_member));
    RETURN NULL;
END
$$;
CREATE TRIGGER clinical_observation_member_panels AFTER UPDATE ON clinical_observation
    REFERENCING OLD TABLE AS clinical_member_old NEW TABLE AS clinical_member_new
    FOR EACH STATEMENT EXECUTE FUNCTION clinical_stamp_member_panels();
"""

DROP = """
DROP TRIGGER IF EXISTS clinical_observation_member_panels ON clinical_observation;
DROP FUNCTION IF EXISTS clinical_stamp_member_panels();
"""

# Now()'s text on SQLite: 'YYYY-MM-DD HH:MM:SS.fff' (23 characters); Django writes six digits.
PAD = [
    f"UPDATE {table} SET updated_at = updated_at || '000' WHERE length(updated_at) = 23"  # noqa: S608 - constant names
    for table in TABLES
]


def forward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(CREATE)
    elif vendor == "sqlite":
        for statement in PAD:
            schema_editor.execute(statement)


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0005_clinical_rows_stamped_on_every_update"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
