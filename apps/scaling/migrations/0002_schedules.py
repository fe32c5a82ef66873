from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [("scaling", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        schedule_operation(
            {
                "name": "Workload forecasts and replica plans",
                "task": "scaling.forecast",
                "every": 1,
                "period": "hours",
                "expire_seconds": 3600,
            },
            {
                "name": "Scaling reconcile (apply manifests, emergency alerts)",
                "task": "scaling.reconcile",
                "every": 1,
                "period": "minutes",
                "expire_seconds": 60,
            },
            {
                "name": "Prune forecasts older than 30 days",
                "task": "scaling.prune",
                "every": 1,
                "period": "days",
                "expire_seconds": 3600,
            },
        ),  # fmt: skip
    ]
