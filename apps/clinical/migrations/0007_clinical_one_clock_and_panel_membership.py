"""Review d: one clock for `updated_at`, and an empty panel's version follows every change of its membership.

One clock (PostgreSQL): `save()` stamped the app host's clock (auto_now) while `.update()`, the default and the
triggers stamped the database's, so meta.lastUpdated went back when a host's clock ran behind, and a client syncing
with `_lastUpdated=gt<last seen>` lost the write for good. Now the database stamps every write: `save()` of an
existing row writes no stamp (models.StampedClinicalModel), and the BEFORE UPDATE trigger sets
`greatest(statement_timestamp(), <the row's stamp> + 1 µs)` where an UPDATE left the stamp as it was or set Now():
a stamp never goes back, not for a writer whose statement began before the one it waited for on the row's lock,
nor below one an app clock wrote ahead before this migration. Another explicit value is still kept (a data repair).
A BEFORE INSERT trigger sets statement_timestamp() where an INSERT brought another value (save()'s auto_now, the
loader's COPY of patients); its WHEN skips the call where the row took the column default, the same value.

Membership (PostgreSQL): 0006 stamped an empty panel when a member's status changed; a member deleted, or moved to
another instant, patient, category or code (the ORM or raw SQL), left the panel's ETag and `_lastUpdated` as they
were while its hasMember changed. The statement trigger now compares all five columns and stamps the panels at both
the old and the new place; an AFTER DELETE statement trigger stamps those of the deleted rows. Still one UPDATE a
statement from its transition tables. A member INSERTed outside the services still leaves its panels as they were
(0006: the loader's COPY would pay for it).

SQLite (`make run`) has none of this: one host, one clock, the ORM stamps every write. Reversed: 0005's row function
and 0006's statement function come back, the new triggers are dropped.
"""

from django.db import migrations

TABLES = ("clinical_patient", "clinical_encounter", "clinical_observation", "clinical_medicationrequest")

# codes.PANEL_MEMBER_CODES and selectors.EMPTY_PANEL as of this migration (tests/clinical/test_e_panel_codes.py
# compares them): the vital-signs panel holds every other vital sign, the blood pressure panel its three pressures.
VITAL_PANEL = "85353-1"
BP_PANEL = "85354-9"
BP_MEMBERS = ("8480-6", "8462-4", "8478-0")
EMPTY_COMPONENTS = ("null", "[]", "{}")

STAMP = """
CREATE OR REPLACE FUNCTION clinical_stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Left as it was (raw SQL, the ORM's save, which writes no stamp) or Now() (the ORM's update()): the clock.
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at OR NEW.updated_at = statement_timestamp() THEN
        NEW.updated_at := greatest(statement_timestamp(), OLD.updated_at + interval '1 microsecond');
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE FUNCTION clinical_stamp_inserted_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := statement_timestamp();
    RETURN NEW;
END
$$;
""" + "".join(
    f"CREATE TRIGGER {table}_stamp_insert BEFORE INSERT ON {table} FOR EACH ROW "
    f"WHEN (NEW.updated_at IS DISTINCT FROM statement_timestamp()) EXECUTE FUNCTION clinical_stamp_inserted_at();\n"
    for table in TABLES
)

UNSTAMP = (
    "".join(f"DROP TRIGGER IF EXISTS {table}_stamp_insert ON {table};\n" for table in TABLES)
    + """
DROP FUNCTION IF EXISTS clinical_stamp_inserted_at();
CREATE OR REPLACE FUNCTION clinical_stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := statement_timestamp();
    END IF;
    RETURN NEW;
END
$$;
"""
)

_CODES = ", ".join(f"'{code}'" for code in BP_MEMBERS)
_EMPTY = ", ".join(f"'{value}'::jsonb" for value in EMPTY_COMPONENTS)
# The empty panels at the places (patient, instant) of `places`: one row a place, with which panels it concerns.
_STAMP_PANELS = f"""
    UPDATE clinical_observation AS panel SET updated_at = statement_timestamp()
    FROM (
        SELECT place.patient_id, place.effective_at,
               bool_or(place.code <> '{VITAL_PANEL}') AS vital_member,
               bool_or(place.code IN ({_CODES})) AS pressure_member
        FROM (PLACES) AS place
        WHERE place.category = 'vital-signs'
        GROUP BY place.patient_id, place.effective_at
    ) AS changed
    WHERE panel.patient_id = changed.patient_id
      AND panel.category = 'vital-signs'
      AND panel.effective_at = changed.effective_at
      AND panel.value IS NULL
      AND (panel.components IS NULL OR panel.components IN ({_EMPTY}))
      AND ((panel.code = '{VITAL_PANEL}' AND changed.vital_member)
           OR (panel.code = '{BP_PANEL}' AND changed.pressure_member));
"""  # noqa: S608 - the codes are this module's constants
# Each changed row at its old place and at its new one: one join of the transition tables.
_MOVED = """
    SELECT side.* FROM clinical_member_old AS old_row JOIN clinical_member_new AS new_row ON new_row.id = old_row.id
    CROSS JOIN LATERAL (VALUES (old_row.patient_id, old_row.effective_at, old_row.category, old_row.code),
                               (new_row.patient_id, new_row.effective_at, new_row.category, new_row.code))
        AS side (patient_id, effective_at, category, code)
    WHERE (new_row.status, new_row.patient_id, new_row.effective_at, new_row.category, new_row.code)
          IS DISTINCT FROM (old_row.status, old_row.patient_id, old_row.effective_at, old_row.category, old_row.code)
"""
_UPDATED = _STAMP_PANELS.replace("PLACES", _MOVED)
_DELETED = _STAMP_PANELS.replace("PLACES", "SELECT patient_id, effective_at, category, code FROM clinical_member_old")

MEMBERSHIP = f"""
CREATE OR REPLACE FUNCTION clinical_stamp_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN  -- the UPDATE below, or one another trigger ran
        RETURN NULL;
    END IF;
    {_UPDATED}
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION clinical_stamp_deleted_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    {_DELETED}
    RETURN NULL;
END
$$;
CREATE TRIGGER clinical_observation_deleted_member_panels AFTER DELETE ON clinical_observation
    REFERENCING OLD TABLE AS clinical_member_old
    FOR EACH STATEMENT EXECUTE FUNCTION clinical_stamp_deleted_member_panels();
"""

# 0006's function, as it was.
UNMEMBERSHIP = f"""
DROP TRIGGER IF EXISTS clinical_observation_deleted_member_panels ON clinical_observation;
DROP FUNCTION IF EXISTS clinical_stamp_deleted_member_panels();
CREATE OR REPLACE FUNCTION clinical_stamp_member_panels() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    UPDATE clinical_observation AS panel SET updated_at = statement_timestamp()
    FROM (
        SELECT new_row.patient_id, new_row.effective_at,
               bool_or(new_row.code <> '{VITAL_PANEL}') AS vital_member,
               bool_or(new_row.code IN ({_CODES})) AS pressure_member
        FROM clinical_member_new AS new_row JOIN clinical_member_old AS old_row ON old_row.id = new_row.id
        WHERE new_row.status IS DISTINCT FROM old_row.status AND new_row.category = 'vital-signs'
        GROUP BY new_row.patient_id, new_row.effective_at
    ) AS changed
    WHERE panel.patient_id = changed.patient_id
      AND panel.category = 'vital-signs'
      AND panel.effective_at = changed.effective_at
      AND panel.value IS NULL
      AND (panel.components IS NULL OR panel.components IN ({_EMPTY}))
      AND ((panel.code = '{VITAL_PANEL}' AND changed.vital_member) OR (panel.code = '{BP_PANEL}' AND changed.pressure_member));
    RETURN NULL;
END
$$;
"""  # noqa: S608 - the codes are this module's constants


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STAMP)
        schema_editor.execute(MEMBERSHIP)


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNMEMBERSHIP)
        schema_editor.execute(UNSTAMP)


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0006_clinical_panels_stamped_by_member_updates"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
