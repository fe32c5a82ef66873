from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Health, the worker heartbeat, the dashboard shell and demo seeding."""

    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from apps.core.selectors import CHECKS

        # A misspelt check would gate readiness on nothing, silently.
        unknown = [name for name in settings.READYZ_REQUIRED if name not in CHECKS]
        if unknown:
            raise ImproperlyConfigured(
                f"READYZ_REQUIRED names no /readyz check: {', '.join(unknown)}; the checks are {', '.join(CHECKS)}."
            )

        from apps.core.service_urls import check_broker_url, check_redis_url, check_result_backend

        check_redis_url(settings.REDIS_URL)  # a port or database that is no number: the first use failed, not start-up
        check_broker_url(settings.CELERY_BROKER_URL)
        check_result_backend(settings.CELERY_RESULT_BACKEND or "")

        from apps.core.client_address import parse_trusted_proxies

        parse_trusted_proxies(settings.TRUSTED_PROXIES)  # a typo stops start-up, not the first request

        from django.contrib.auth.signals import user_logged_in

        from apps.core.middleware import check_session_idle_seconds, stamp_session_on_sign_in

        check_session_idle_seconds(settings.SESSION_IDLE_SECONDS)  # under 2 minutes signed active users out

        user_logged_in.connect(stamp_session_on_sign_in, dispatch_uid="core.session_idle.stamp")

        from apps.core import admin_actions

        admin_actions.install()  # a non-numeric selected id is a 400 in every admin, not a 500

        from apps.core.log_filters import bind_task_id, unbind_task_id

        # weak=False: the receivers are module functions, kept alive anyway; dispatch_uid: ready() may run twice.
        task_prerun.connect(bind_task_id, weak=False, dispatch_uid="core.log_task_id.bind")
        task_postrun.connect(unbind_task_id, weak=False, dispatch_uid="core.log_task_id.unbind")
