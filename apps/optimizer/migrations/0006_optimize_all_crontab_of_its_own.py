"""The seeded "optimize all" schedule on a crontab row of its own.

optimizer_schedules_ensure took any 02:30 crontab of TIME_ZONE (get_or_create), an Operator's own among them: a
row shared with "optimize all" (every service's, hidden ones too) is read-only to an Operator in admin (the
shared-timing rule), so the Operator's own crontab could no longer be retimed, and anyone's retime of it retimed
both. Where another schedule uses its crontab, "optimize all" gets a copy of it (same timing), as the nightly
benchmarks did in benchmarks 0011; the other schedules keep the row.
"""

from django.db import migrations

NIGHTLY_OPTIMIZE = "Nightly optimize all (recommendations only)"  # apps.optimizer.services, as of this migration
TIMING = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone")


def optimize_all_own_crontab(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    task = PeriodicTask.objects.filter(name=NIGHTLY_OPTIMIZE, crontab__isnull=False).select_related("crontab").first()
    if task is None or not PeriodicTask.objects.filter(crontab_id=task.crontab_id).exclude(pk=task.pk).exists():
        return  # none, or already its own
    crontab = task.crontab
    task.crontab = CrontabSchedule.objects.create(**{name: getattr(crontab, name) for name in TIMING})
    task.save(update_fields=["crontab"])


class Migration(migrations.Migration):
    dependencies = [
        ("optimizer", "0005_recommendation_applying"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(optimize_all_own_crontab, migrations.RunPython.noop)]
