"""The metric points' (resolution, at) index: the hourly retention asks "any points at this resolution older
than the cutoff?" three times, and without it each question was a sequential scan of every point (about 1M,
410 ms, every hour, nothing to fold). The table is big and written each minute: PostgreSQL builds it
CONCURRENTLY (outside a transaction, hence atomic = False, as 0013); SQLite, the embedded default, plainly."""

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

    dependencies = [("metrics", "0013_alert_started_index")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="metricpoint",
            index=models.Index(fields=["resolution", "at"], name="metricpoint_resolution_at"),
        ),
    ]
