"""PostgreSQL: refuse TRUNCATE of the audit trail (the event table, every partition, the chain heads) and
DELETE of a chain head. The row triggers of 0001 never fired for TRUNCATE, and a statement-level trigger on
the partitioned table is not cloned onto its partitions, so each table gets its own; partitions created
later get theirs from `audit_partitions_ensure`. A no-op on SQLite.

`manage.py flush` (the audit app's, which tests use between transactional tests) passes by setting
`audit.allow_truncate` for its transaction; that is honoured only for a role owning the table, which could
drop the trigger anyway. DROP/DETACH of a partition cannot be refused without an event trigger (superuser
only): `audit verify` reports a missing or detached partition, an unguarded table and the records gone."""

from django.db import migrations

EVENT_TABLE = "audit_auditevent"
HEAD_TABLE = "audit_auditchainhead"
GUARD = "audit_refuse_truncate"


def add_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {GUARD}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "  # noqa: S608
        "IF current_setting('audit.allow_truncate', true) = 'on' "
        "AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN "
        "RETURN NULL; END IF; "
        "RAISE EXCEPTION 'audit trail is append-only: TRUNCATE of % refused', TG_TABLE_NAME; END $$",
        None,  # no parameters: the % is PL/pgSQL's
    )
    schema_editor.execute(
        "CREATE OR REPLACE FUNCTION audit_chain_head_kept() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'audit chain heads are append-only: DELETE refused'; END $$"
    )
    schema_editor.execute(
        f'CREATE TRIGGER audit_chain_head_kept BEFORE DELETE ON "{HEAD_TABLE}" '
        "FOR EACH ROW EXECUTE FUNCTION audit_chain_head_kept()"
    )
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relid::regclass::text FROM pg_partition_tree(%s)", [EVENT_TABLE])
        tables = [row[0].strip('"') for row in cursor.fetchall()] + [HEAD_TABLE]
    for table in tables:
        schema_editor.execute(
            f'CREATE TRIGGER {GUARD} BEFORE TRUNCATE ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION {GUARD}()'
        )


def drop_guards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP TRIGGER IF EXISTS audit_chain_head_kept ON "{HEAD_TABLE}"')
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_chain_head_kept()")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {GUARD}() CASCADE")  # and every table's trigger


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_partitions_and_schedule")]

    operations = [migrations.RunPython(add_guards, drop_guards)]
