"""The alerts' newest-first index, built without locking the alert table out.

Alerts are never pruned; a plain CREATE INDEX holds a SHARE lock while it scans them all, and an alert that
fires meanwhile waits (the evaluation task, each minute). PostgreSQL builds it CONCURRENTLY (outside a
transaction, hence atomic = False); SQLite, the embedded default, builds it plainly."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("metrics", "0012_alert_snapshot_missing_index")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="alert",
            index=models.Index(fields=["-started_at", "-id"], name="alert_started"),
        ),
    ]
