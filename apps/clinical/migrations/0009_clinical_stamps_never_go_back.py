"""A row's `updated_at` never goes back on PostgreSQL (review g, finding 3): 0005's BEFORE UPDATE trigger function
now sets at least the row's previous stamp plus one microsecond. A save that waited on a row lock (another
transaction's `select_for_update()`, or its UPDATE) wrote its statement's start, which came before the lock holder's
write: it committed last with a stamp 0.8 s below the holder's, and a `_lastUpdated=gt<the holder's>` sync missed
it. The UPDATE's RETURNING, and so the row in memory (StampedClinicalModel._do_update), holds the raised stamp.
Same for a bulk `.update()` and the panel stamps of 0007's trigger: every UPDATE of the four tables passes here.

A data repair that sets an older stamp on purpose (a restore's copy of a row) is raised too, to the row's stamp
plus one microsecond: it sets it with the row trigger disabled in its transaction, as 0006 describes (`ALTER
TABLE <table> DISABLE TRIGGER <table>_stamp`, as the table's owner, then ENABLE before the commit; it locks the
table until the commit), or, as a superuser, with `SET LOCAL session_replication_role = replica` (no table lock;
foreign-key checks and 0007's trigger are skipped too). A later explicit stamp is kept as before.

Only the function changes (its triggers call it by name). Reversed: 0005's function text. SQLite has no trigger:
the ORM stamps every write from the app's clock (one host).
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION clinical_stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := statement_timestamp();
    END IF;
    -- a write that waited on the row's lock started before the holder wrote: never at or below its stamp
    NEW.updated_at := GREATEST(NEW.updated_at, OLD.updated_at + interval '1 microsecond');
    RETURN NEW;
END
$$;
"""

# 0005's function, as it created it.
BACKWARD = """
CREATE OR REPLACE FUNCTION clinical_stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := statement_timestamp();
    END IF;
    RETURN NEW;
END
$$;
"""


def on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0008_clinical_rows_stamped_by_the_database_clock"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD), elidable=False),
    ]
