from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [
        ("ratelimits", "0008_requests_log_bound"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_operation(
            {
                "name": "Prune the database rate limiter's log",
                "task": "ratelimits.prune_hits",
                "every": 1,
                "period": "hours",
                "expire_seconds": 1800,
                "description": "Hits older than the longest rate-limit period (only used without Redis).",
            }
        ),
    ]
