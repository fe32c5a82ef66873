"""The metric points' (resolution, at) index: the hourly retention asks "any points at this resolution older
than the cutoff?" three times, and without it each question was a sequential scan of every point (about 1M,
410 ms, every hour, nothing to fold). The table is big and written each minute: PostgreSQL builds it
CONCURRENTLY (outside a transaction, hence atomic = False, as 0013); SQLite, the embedded default, plainly."""

from django.db import migrations, models

from apps.core.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("metrics", "0013_alert_started_index")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="metricpoint",
            index=models.Index(fields=["resolution", "at"], name="metricpoint_resolution_at"),
        ),
    ]
