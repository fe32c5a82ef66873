"""The schedules `schedule_operation` seeded carried queue 'default', which overrides CELERY_TASK_ROUTES: beat sent
the hourly forecast (scaling.forecast, minutes of model fitting) to the short-task worker instead of `inference`.
A seeded row whose task routes elsewhere has its 'default' cleared, so the route decides. Beat's saves leave no
trace of who last set the queue, so a row whose task routes to 'default' anyway keeps it as it is; a seeded row
an admin pointed at another queue is not touched."""

from django.db import migrations
from django.utils import timezone

# Every schedule seeded by apps.core.migration_operations.schedule_operation, by name: a row of these names that
# an admin created themselves under another task is judged by its own task's route.
SEEDED_NAMES = (
    "Fail benchmark runs stuck past their deadline",
    "Prune expired L3 cache entries",
    "Prune idle cache scope generations",
    "Collect metric series",
    "Evaluate alert rules",
    "Downsample metrics",
    "Fail optimization runs stuck past their deadline",
    "Adapt rate limits to load",
    "Prune rate-limit adjustments",
    "Prune the database rate limiter's log",
    "Resource monitor",
    "Workload forecasts and replica plans",
    "Scaling reconcile (apply manifests, emergency alerts)",
    "Prune forecasts older than 30 days",
)


def routed_queue(task: str) -> str:
    from controlplane.celery import app

    return app.amqp.router.route({}, task)["queue"].name


def clear_default_queue(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    cleared = 0
    for row in PeriodicTask.objects.filter(name__in=SEEDED_NAMES, queue="default"):
        if routed_queue(row.task) != "default":
            cleared += PeriodicTask.objects.filter(pk=row.pk, queue="default").update(queue=None)
    if cleared:  # a running beat reloads its schedules when this stamp moves (update() sends no signal)
        apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


class Migration(migrations.Migration):
    dependencies = [("core", "0003_idempotency_key_hmac"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(clear_default_queue, migrations.RunPython.noop)]
