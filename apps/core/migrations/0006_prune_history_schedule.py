"""Finished run history is deleted daily past HISTORY_KEEP_DAYS: benchmark runs, optimization runs and resolved
alerts were kept for ever, the nightly load tests and optimizations adding rows every day."""

from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_prune_sign_ins_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_operation(
            {
                "name": "Prune finished run history",
                "task": "core.prune_history",
                "every": 1,
                "period": "days",
                "expire_seconds": 3600,
                "description": "Benchmark and optimization runs, resolved alerts, finished more than HISTORY_KEEP_DAYS "
                "ago; what is running, open or read as the latest or a baseline is kept.",
            }
        ),
    ]
