"""The brief's per-API limits, and the beat task that adapts them under load."""

from django.db import migrations

from apps.core.migration_operations import schedule_operation, seed_operation
from apps.ratelimits.defaults import DEFAULT_POLICIES


class Migration(migrations.Migration):
    dependencies = [("ratelimits", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        seed_operation("ratelimits", "RateLimitPolicy", "scope", DEFAULT_POLICIES),
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
