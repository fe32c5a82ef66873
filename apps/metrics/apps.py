from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Request metrics, SLOs and alerts, and the live feed the dashboard listens to."""

    name = "apps.metrics"
    label = "metrics"

    def ready(self) -> None:
        from apps.metrics import signals  # noqa: F401 - connects the receivers
