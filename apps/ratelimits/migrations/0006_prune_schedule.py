from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [
        ("ratelimits", "0005_burst_per_second_min"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_operation(
            {
                "name": "Prune rate-limit adjustments",
                "task": "ratelimits.prune_adjustments",
                "every": 1,
                "period": "days",
                "expire_seconds": 3600,
                "description": "Adaptive changes older than 90 days; each policy keeps its latest.",
            }
        ),
    ]
