from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    """Optimization runs (`manage.py optimize ...`): findings, recommendations, what was applied."""

    name = "apps.optimizer"
    label = "optimizer"
