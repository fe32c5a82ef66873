from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Health, the worker heartbeat, the dashboard shell and demo seeding."""

    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun

        from apps.core.log_filters import bind_task_id, unbind_task_id

        # weak=False: the receivers are module functions, kept alive anyway; dispatch_uid: ready() may run twice.
        task_prerun.connect(bind_task_id, weak=False, dispatch_uid="core.log_task_id.bind")
        task_postrun.connect(unbind_task_id, weak=False, dispatch_uid="core.log_task_id.unbind")
