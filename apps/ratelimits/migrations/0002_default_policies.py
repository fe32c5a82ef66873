"""The brief's per-API limits, and the beat task that adapts them under load."""

from django.db import migrations

from apps.core.migration_operations import schedule_operation
from apps.ratelimits.defaults import DEFAULT_POLICIES


def seed(apps, schema_editor):
    RateLimitPolicy = apps.get_model("ratelimits", "RateLimitPolicy")
    for scope, fields in DEFAULT_POLICIES.items():
        RateLimitPolicy.objects.get_or_create(scope=scope, defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("ratelimits", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        schedule_operation(
            {
                "name": "Adapt rate limits to load",
                "task": "ratelimits.adapt",
                "every": 15,
                "period": "seconds",
                "expire_seconds": 15,
            },
        ),  # fmt: skip
    ]
