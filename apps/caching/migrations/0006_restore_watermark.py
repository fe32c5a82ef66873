"""A sequence each cache poll draws from: a database restored from a backup takes it back with it, which is how the
caches notice the restore (apps/caching/stack.py, RESTORE_SEQUENCE). PostgreSQL only (embedded SQLite: one host)."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS caching_restore_watermark")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS caching_restore_watermark")


class Migration(migrations.Migration):
    dependencies = [("caching", "0005_scope_generation_start_and_prune")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
