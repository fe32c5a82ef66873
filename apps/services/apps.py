from django.apps import AppConfig


class ServicesConfig(AppConfig):
    """The service registry: every policy, metric, benchmark and forecast points at a Service."""

    name = "apps.services"
    label = "services"
