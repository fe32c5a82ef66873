from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    name = "apps.resources"
    verbose_name = "Resources"
    default_auto_field = "django.db.models.BigAutoField"
