"""The alerts' newest-first index, built without locking the alert table out.

Alerts are never pruned; a plain CREATE INDEX holds a SHARE lock while it scans them all, and an alert that
fires meanwhile waits (the evaluation task, each minute). PostgreSQL builds it CONCURRENTLY (outside a
transaction, hence atomic = False); SQLite, the embedded default, builds it plainly."""

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

    dependencies = [("metrics", "0012_alert_snapshot_missing_index")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="alert",
            index=models.Index(fields=["-started_at", "-id"], name="alert_started"),
        ),
    ]
