"""An empty panel's version follows every change of its hasMember, not only a member's status (0006): a member
DELETEd (the ORM, a queryset, raw SQL) or moved to another instant, patient, category or code (`.update()`, raw SQL)
left the panel's ETag, meta.versionId and meta.lastUpdated as they were, so a conditional read answered 304 with the
old hasMember and `_lastUpdated` / `$everything?_since` syncs missed the panel.

On PostgreSQL the AFTER UPDATE statement trigger now compares status, effective_at, code, category and patient_id,
and stamps the empty panels at both the old and the new (patient, instant) of each changed row; a new AFTER DELETE
statement trigger stamps those at the old place of each deleted row. Both still read the statement's transition
tables once and run one UPDATE a statement (one index lookup, clinical_obs_patient_cat, a distinct instant), and
return at once at trigger depth 2 (their own UPDATE). A patient's hard delete, its thousands of readings in one
DELETE, pays one grouping of the deleted rows and a lookup per instant that finds nothing (its panels went with
it): see the commit for the measure.

Not covered, as in 0006: a member INSERTed outside the services (the loader's COPY would pay for every row).
SQLite (`make run`): nothing here; the services stamp the panels of what they record and retract. Reversed:
0006's function comes back and the DELETE trigger and its function are dropped.
"""

from django.db import migrations

# codes.PANEL_MEMBER_CODES and selectors.EMPTY_PANEL as of this migration: the vital-signs panel holds every other
# vital sign, the blood pressure panel its systolic, diastolic and mean pressures.
_STAMP_PANELS = """
    UPDATE clinical_observation AS panel SET updated_at = statement_timestamp()
    FROM (  -- one row a place (a round's readings share one instant): a lookup a place, not a changed row
        SELECT place.patient_id, place.effective_at,
               bool_or(place.code <> '85353-1') AS vital_member,
               bool_or(place.code IN ('8480-6', '8462-4', '8478-0')) AS pressure_member
        FROM (PLACES) AS place
        WHERE place.category = 'vital-signs'
        GROUP BY place.patient_id, place.effective_at
    ) AS changed
    WHERE panel.patient_id = changed.patient_id
      AND panel.category = 'vital-signs'
      AND panel.effective_at = changed.effective_at
      AND panel.value IS NULL
      AND (panel.components IS NULL OR panel.components IN ('null'::jsonb, '[]'::jsonb, '{}'::jsonb))
      AND ((panel.code = '85353-1' AND changed.vital_member) OR (panel.code = '85354-9' AND changed.pressure_member));
"""
# Each changed row at its old place and at its new one, from one join of the transition tables.
_MOVED = """
        SELECT side.* FROM clinical_member_old AS old_row JOIN clinical_member_new AS new_row ON new_row.id = old_row.id
        CROSS JOIN LATERAL (VALUES (old_row.patient_id, old_row.effective_at, old_row.category, old_row.code),
                                   (new_row.patient_id, new_row.effective_at, new_row.category, new_row.code))
            AS side (patient_id, effective_at, category, code)
        WHERE (new_row.status, new_row.effective_at, new_row.code, new_row.category, new_row.patient_id)
              IS DISTINCT FROM (old_row.status, old_row.effective_at, old_row.code, old_row.category, old_row.patient_id)
"""
_DELETED = "SELECT patient_id, effective_at, category, code FROM clinical_member_old"

CREATE = f"""
CREATE OR REPLACE FUNCTION clinical_stamp_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN  -- the UPDATE below, or one another trigger ran
        RETURN NULL;
    END IF;
    {_STAMP_PANELS.replace("PLACES", _MOVED)}
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION clinical_stamp_deleted_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    {_STAMP_PANELS.replace("PLACES", _DELETED)}
    RETURN NULL;
END
$$;
CREATE TRIGGER clinical_observation_deleted_member_panels AFTER DELETE ON clinical_observation
    REFERENCING OLD TABLE AS clinical_member_old
    FOR EACH STATEMENT EXECUTE FUNCTION clinical_stamp_deleted_member_panels();
"""  # noqa: S608 - the codes are this module's constants

# 0006's function, as it was (its trigger, AFTER UPDATE with both transition tables, is unchanged).
DROP = """
DROP TRIGGER IF EXISTS clinical_observation_deleted_member_panels ON clinical_observation;
DROP FUNCTION IF EXISTS clinical_stamp_deleted_member_panels();
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
"""


def on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":  # SQLite (`make run`): the services stamp panels
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0006_clinical_panels_stamped_by_member_updates"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP), elidable=False),
    ]
