"""A sequence each cache poll draws from: a database restored from a backup takes it back with it, which is how the
caches notice the restore (apps/caching/stack.py, RESTORE_SEQUENCE). PostgreSQL only (embedded SQLite: one host).

It starts at the database clock in microseconds, so a rollback of this migration and a migrate again go on above
every number drawn before (starting at 1 again looked like a restore), and CACHE 1 hands numbers out in order (with
a larger CACHE each session draws from its own block: every poll looked like a restore)."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
            start = int(cursor.fetchone()[0])
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS caching_restore_watermark START WITH {start} CACHE 1")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS caching_restore_watermark")


class Migration(migrations.Migration):
    dependencies = [("caching", "0005_scope_generation_start_and_prune")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
