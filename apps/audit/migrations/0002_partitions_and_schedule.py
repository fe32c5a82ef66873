"""Create this month's and the next three months' partitions now, and schedule the beat task that
keeps creating them ahead."""

from django.db import migrations


def create_partitions(apps, schema_editor):
    from apps.audit.services import audit_partitions_ensure

    if schema_editor.connection.vendor == "postgresql":
        audit_partitions_ensure(months_ahead=3)


def schedule_partition_task(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="15", hour="1", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name="Audit partitions ahead",
        defaults={
            "task": "audit.ensure_partitions",
            "crontab": daily,
            "queue": "default",
            "description": "Creates the audit trail's monthly PostgreSQL partitions three months ahead.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_partitions, migrations.RunPython.noop),
        migrations.RunPython(schedule_partition_task, migrations.RunPython.noop),
    ]
