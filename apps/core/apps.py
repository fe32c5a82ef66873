from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Health, the worker heartbeat, the dashboard shell and demo seeding."""

    name = "apps.core"
    label = "core"
