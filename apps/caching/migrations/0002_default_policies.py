"""The brief's namespaces with their medical TTLs, and the beat task that prunes the L3 table."""

from django.db import migrations

from apps.caching.defaults import DEFAULT_POLICIES
from apps.core.migration_operations import schedule_operation, seed_operation


class Migration(migrations.Migration):
    dependencies = [("caching", "0001_initial"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [
        seed_operation("caching", "CachePolicy", "namespace", DEFAULT_POLICIES),
        schedule_operation(
            {
                "name": "Prune expired L3 cache entries",
                "task": "caching.prune_entries",
                "every": 10,
                "period": "minutes",
                "expire_seconds": 600,
            },
        ),  # fmt: skip
    ]
