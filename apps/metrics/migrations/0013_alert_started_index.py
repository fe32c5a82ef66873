"""The alerts' newest-first index, built without locking the alert table out.

Alerts are never pruned; a plain CREATE INDEX holds a SHARE lock while it scans them all, and an alert that
fires meanwhile waits (the evaluation task, each minute). PostgreSQL builds it CONCURRENTLY (outside a
transaction, hence atomic = False); SQLite, the embedded default, builds it plainly."""

from django.db import migrations, models

from apps.core.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("metrics", "0012_alert_snapshot_missing_index")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="alert",
            index=models.Index(fields=["-started_at", "-id"], name="alert_started"),
        ),
    ]
