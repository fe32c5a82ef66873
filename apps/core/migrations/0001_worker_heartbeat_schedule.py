"""Every deployment needs the heartbeat schedule: /readyz reports a worker by it."""

from django.conf import settings
from django.db import migrations


def create_heartbeat_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.WORKER_HEARTBEAT_INTERVAL_SECONDS, period="seconds"
    )
    PeriodicTask.objects.get_or_create(
        name="Worker heartbeat",
        defaults={
            "task": "core.heartbeat",
            "interval": interval,
            "queue": "default",
            "description": "Proves a worker consumes the default queue; /readyz reads it.",
            # A heartbeat that waited in the queue longer than this says nothing about now.
            "expire_seconds": 60,
        },
    )


def remove_heartbeat_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="Worker heartbeat").delete()


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(create_heartbeat_schedule, remove_heartbeat_schedule)]
