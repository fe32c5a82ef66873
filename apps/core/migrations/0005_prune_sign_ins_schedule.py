"""Expired sessions and old sign-in log rows are deleted hourly: nothing ran `clearsessions`, so every staff
session that timed out stayed in django_session for ever, and axes' AccessLog kept a row per login for ever."""

from django.db import migrations

from apps.core.migration_operations import schedule_operation


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_seeded_schedules_follow_routes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_operation(
            {
                "name": "Prune expired sessions and the sign-in log",
                "task": "core.prune_sign_ins",
                "every": 1,
                "period": "hours",
                "expire_seconds": 1800,
                "description": "Sessions past their expiry; sign-in log rows older than SIGN_IN_LOG_KEEP_DAYS.",
            }
        ),
    ]
