from django.apps import AppConfig


class ServicesConfig(AppConfig):
    """The service registry: every policy, metric, benchmark and forecast points at a Service."""

    name = "apps.services"
    label = "services"

    def ready(self) -> None:
        from apps.services import checks, signals  # noqa: F401 - connects the receivers, registers the checks
