from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [("resources", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        schedule_operation(
            {
                "name": "Resource monitor",
                "task": "resources.monitor",
                "every": 30,
                "period": "seconds",
                "expire_seconds": 30,
            },
        ),  # fmt: skip
    ]
