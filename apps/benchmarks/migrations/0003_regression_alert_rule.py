"""An alert while any benchmark regression is unacknowledged (edit its webhook or e-mail in admin)."""

from django.db import migrations

from apps.core.migration_operations import seed_operation


class Migration(migrations.Migration):
    dependencies = [("benchmarks", "0002_stuck_run_checker"), ("metrics", "0004_benchmark_regressions_metric")]

    operations = [
        seed_operation(
            "metrics",
            "AlertRule",
            "name",
            {
                "Benchmark regression": {
                    "metric": "benchmark_regressions",
                    "operator": "gt",
                    "threshold": 0.5,  # one or more
                    "for_seconds": 0,
                    "hysteresis_pct": 0,
                    "severity": "warning",
                }
            },
        ),
    ]
