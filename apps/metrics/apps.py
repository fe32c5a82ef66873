from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Request metrics, SLOs and alerts, and the live feed the dashboard listens to."""

    name = "apps.metrics"
    label = "metrics"
