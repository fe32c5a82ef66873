from django.apps import AppConfig


class CachingConfig(AppConfig):
    name = "apps.caching"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.caching import signals  # noqa: F401 - a policy edit reaches every process
