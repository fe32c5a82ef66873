"""Scope generation rows start at the time in microseconds, and the rows of scopes idle for 48 h are pruned hourly."""

from django.db import migrations, models

import apps.caching.models
from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [
        ("caching", "0004_encrypt_help_aes_gcm"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name="cachescopegeneration",
            name="generation",
            field=models.PositiveBigIntegerField(default=apps.caching.models.scope_generation_start),
        ),
        schedule_operation(
            {
                "name": "Prune idle cache scope generations",
                "task": "caching.prune_scope_generations",
                "every": 1,
                "period": "hours",
                "expire_seconds": 3600,
                "description": "Patients' invalidation rows not written for 48 h (twice the longest cache entry).",
            }
        ),
    ]
