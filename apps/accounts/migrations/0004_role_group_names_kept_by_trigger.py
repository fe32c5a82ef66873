"""A role's group keeps its name, held by the database (PostgreSQL and SQLite): the pre_save guard
(refuse_renaming_a_role_group) sees only a model's save(), so a queryset update() or SQL renamed the group,
which then was no role's group: it could be deleted, and a service restricted to it fell open to every staff
role. A rename of a role's group now fails with an IntegrityError, whatever makes it."""

from django.db import migrations

# The role names as of this migration (apps.accounts.roles.ROLE_GROUPS), spelled out: a migration must not
# change when the code does.
ROLES = "('Administrators', 'Operators', 'Viewers')"
NAME = "accounts_role_group_keeps_its_name"

POSTGRES_FORWARDS = [
    f"""
    CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.name IN {ROLES} AND NEW.name IS DISTINCT FROM OLD.name THEN
            RAISE EXCEPTION 'The % group is a staff role and keeps its name.', OLD.name
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$
    """,
    f"DROP TRIGGER IF EXISTS {NAME} ON auth_group",
    f"CREATE TRIGGER {NAME} BEFORE UPDATE OF name ON auth_group FOR EACH ROW EXECUTE FUNCTION {NAME}()",
]
POSTGRES_BACKWARDS = [f"DROP TRIGGER IF EXISTS {NAME} ON auth_group", f"DROP FUNCTION IF EXISTS {NAME}()"]
SQLITE_FORWARDS = [
    f"DROP TRIGGER IF EXISTS {NAME}",
    f"""
    CREATE TRIGGER {NAME} BEFORE UPDATE OF name ON auth_group
    FOR EACH ROW WHEN OLD.name IN {ROLES} AND NEW.name IS NOT OLD.name
    BEGIN
        SELECT RAISE(ABORT, 'A staff role group keeps its name.');
    END
    """,
]
SQLITE_BACKWARDS = [f"DROP TRIGGER IF EXISTS {NAME}"]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)  # no placeholders: % is plpgsql's

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_apiclient_name_folded_unique"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARDS, "sqlite": SQLITE_FORWARDS}),
            _run({"postgresql": POSTGRES_BACKWARDS, "sqlite": SQLITE_BACKWARDS}),
        ),
    ]
