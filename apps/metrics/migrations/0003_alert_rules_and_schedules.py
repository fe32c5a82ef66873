"""The brief's alert thresholds as rules, and the schedules that collect, evaluate and downsample."""

from django.db import migrations

from apps.core.migration_operations import schedule_operation, seed_operation

RULES = {
    "Response time above 2 s": {"metric": "p95_ms", "operator": "gt", "threshold": 2000, "severity": "critical"},
    "Error rate above 5%": {"metric": "error_rate_pct", "operator": "gt", "threshold": 5, "severity": "critical"},
    "CPU above 80%": {"metric": "cpu_pct", "operator": "gt", "threshold": 80},
    "Memory above 85%": {"metric": "memory_pct", "operator": "gt", "threshold": 85},
    "Cache hit rate below 80%": {"metric": "cache_hit_rate_pct", "operator": "lt", "threshold": 80},
}


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_alert_alertnotification_alertrule_metricpoint_and_more"),
                    ("django_celery_beat", "0019_alter_periodictasks_options")]  # fmt: skip

    operations = [
        seed_operation("metrics", "AlertRule", "name", RULES),
        schedule_operation(
            {"name": "Collect metric series", "task": "metrics.collect", "every": 60, "period": "seconds"},
            {"name": "Evaluate alert rules", "task": "metrics.evaluate_alerts", "every": 60, "period": "seconds"},
            {
                "name": "Downsample metrics",
                "task": "metrics.retention",
                "every": 1,
                "period": "hours",
                "expire_seconds": 3600,
            },
        ),  # fmt: skip
    ]
