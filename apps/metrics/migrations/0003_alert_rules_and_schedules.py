"""The brief's alert thresholds as rules, and the schedules that collect, evaluate and downsample."""

from django.db import migrations

RULES = [
    {
        "name": "Response time above 2 s",
        "metric": "p95_ms",
        "operator": "gt",
        "threshold": 2000,
        "severity": "critical",
    },
    {
        "name": "Error rate above 5%",
        "metric": "error_rate_pct",
        "operator": "gt",
        "threshold": 5,
        "severity": "critical",
    },
    {"name": "CPU above 80%", "metric": "cpu_pct", "operator": "gt", "threshold": 80},
    {"name": "Memory above 85%", "metric": "memory_pct", "operator": "gt", "threshold": 85},
    {"name": "Cache hit rate below 80%", "metric": "cache_hit_rate_pct", "operator": "lt", "threshold": 80},
]

SCHEDULES = [
    ("Collect metric series", "metrics.collect", 60, "seconds"),
    ("Evaluate alert rules", "metrics.evaluate_alerts", 60, "seconds"),
    ("Downsample metrics", "metrics.retention", 1, "hours"),
]


def seed(apps, schema_editor):
    AlertRule = apps.get_model("metrics", "AlertRule")
    for rule in RULES:
        AlertRule.objects.get_or_create(name=rule["name"], defaults=rule)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "queue": "default", "expire_seconds": 60}
        )


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_alert_alertnotification_alertrule_metricpoint_and_more"),
                    ("django_celery_beat", "0019_alter_periodictasks_options")]  # fmt: skip

    operations = [migrations.RunPython(seed, unseed)]
