"""The brief's per-API limits, and the beat task that adapts them under load."""

from django.db import migrations

from apps.ratelimits.defaults import DEFAULT_POLICIES


def seed(apps, schema_editor):
    RateLimitPolicy = apps.get_model("ratelimits", "RateLimitPolicy")
    for scope, fields in DEFAULT_POLICIES.items():
        RateLimitPolicy.objects.get_or_create(scope=scope, defaults=fields)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=15, period="seconds")
    PeriodicTask.objects.get_or_create(
        name="Adapt rate limits to load",
        defaults={"task": "ratelimits.adapt", "interval": interval, "queue": "default", "expire_seconds": 15},
    )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="Adapt rate limits to load").delete()


class Migration(migrations.Migration):
    dependencies = [("ratelimits", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(seed, unseed)]
