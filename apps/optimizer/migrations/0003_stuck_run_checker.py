from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [("optimizer", "0002_orchestrator"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        schedule_operation(
            {
                "name": "Fail optimization runs stuck past their deadline",
                "task": "optimizer.fail_stuck_runs",
                "every": 5,
                "period": "minutes",
                "expire_seconds": 300,
            },
        ),  # fmt: skip
    ]
