"""The metric points' (resolution, at) index: the hourly retention asks "any points at this resolution older
than the cutoff?" three times, and without it each question was a sequential scan of every point (about 1M,
410 ms, every hour, nothing to fold). The table is big and written each minute: PostgreSQL builds it
CONCURRENTLY (outside a transaction, hence atomic = False, as 0013); SQLite, the embedded default, plainly."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """On PostgreSQL, rerunnable: a build cut short (cancelled, a lost connection, a deadlock) leaves the index
    INVALID under its name, and a plain CREATE INDEX CONCURRENTLY then failed every rerun ("already exists").
    An invalid one is dropped (concurrently) and the index built with IF NOT EXISTS, so a valid one is kept."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
            return
        self._ensure_not_in_transaction(schema_editor)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [self.index.name])
            row = cursor.fetchone()
            if row is not None and not row[0]:
                cursor.execute(f"DROP INDEX CONCURRENTLY {quote(self.index.name)}")
        sql = str(self.index.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(
            sql.replace("CREATE INDEX CONCURRENTLY ", "CREATE INDEX CONCURRENTLY IF NOT EXISTS ", 1), params=None
        )

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
