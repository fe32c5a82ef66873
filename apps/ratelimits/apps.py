from django.apps import AppConfig


class RatelimitsConfig(AppConfig):
    name = "apps.ratelimits"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.ratelimits import signals  # noqa: F401 - a policy edit reaches every process
