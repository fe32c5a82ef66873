from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [("benchmarks", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        schedule_operation(
            {
                "name": "Fail benchmark runs stuck past their deadline",
                "task": "benchmarks.fail_stuck_runs",
                "every": 5,
                "period": "minutes",
                "expire_seconds": 300,
            },
        ),  # fmt: skip
    ]
