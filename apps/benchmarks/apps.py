from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """Load, stress, spike, endurance and volume runs (Locust, as a subprocess), SLO gates, regressions."""

    name = "apps.benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from apps.benchmarks import signals  # noqa: F401
