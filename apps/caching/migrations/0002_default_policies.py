"""The brief's namespaces with their medical TTLs, and the beat task that prunes the L3 table."""

from django.db import migrations

from apps.caching.defaults import DEFAULT_POLICIES


def seed(apps, schema_editor):
    CachePolicy = apps.get_model("caching", "CachePolicy")
    for namespace, fields in DEFAULT_POLICIES.items():
        CachePolicy.objects.get_or_create(namespace=namespace, defaults=fields)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="Prune expired L3 cache entries",
        defaults={"task": "caching.prune_entries", "interval": interval, "queue": "default", "expire_seconds": 600},
    )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="Prune expired L3 cache entries").delete()


class Migration(migrations.Migration):
    dependencies = [("caching", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(seed, unseed)]
