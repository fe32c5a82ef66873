"""Each nightly benchmark schedule on a crontab row of its own.

nightly_benchmarks_ensure took any 03:00 crontab of TIME_ZONE, an Operator's own among them, and gave it to
every plan's nightly: a row shared with a hidden service's nightly is read-only to an Operator in admin (the
shared-timing rule), so the Operator's own crontab could no longer be retimed. A nightly on a crontab that
another schedule uses gets a copy of it (same timing); where only nightlies share one, the first keeps it.
"""

from django.db import migrations

NIGHTLY_TASK = "benchmarks.scheduled_run"  # apps.benchmarks.services.NIGHTLY_TASK, as of this migration
TIMING = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone")


def nightlies_own_crontabs(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly_crontabs = PeriodicTask.objects.filter(task=NIGHTLY_TASK, crontab__isnull=False).values("crontab_id")
    for crontab in CrontabSchedule.objects.filter(pk__in=nightly_crontabs).order_by("pk"):
        users = list(PeriodicTask.objects.filter(crontab=crontab).order_by("pk"))
        nightlies = [task for task in users if task.task == NIGHTLY_TASK]
        if len(users) == 1:
            continue  # already its own
        moving = nightlies if len(nightlies) < len(users) else nightlies[1:]
        for task in moving:
            task.crontab = CrontabSchedule.objects.create(**{name: getattr(crontab, name) for name in TIMING})
            task.save(update_fields=["crontab"])


class Migration(migrations.Migration):
    dependencies = [
        ("benchmarks", "0010_db_defaults_for_rolling_upgrade"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(nightlies_own_crontabs, migrations.RunPython.noop)]
