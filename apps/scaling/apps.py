from django.apps import AppConfig


class ScalingConfig(AppConfig):
    """Kubernetes autoscaling manifests per service, workload forecasts and replica recommendations."""

    name = "apps.scaling"
    label = "scaling"

    def ready(self) -> None:
        from apps.scaling import checks, signals  # noqa: F401 - connects the receivers, registers the checks
