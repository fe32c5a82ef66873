"""Scheduled tasks sent twice: beat may run twice for a while (an evicted pod terminating beside its
replacement), and both send every schedule. What a task's service needs to do its scheduled work once."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection


def scheduled_task_lock(key: str) -> None:
    """Hold, until the caller's transaction ends, the lock of one scheduled task's check-then-create. Beat may
    run twice for a while (an evicted pod terminating beside its replacement): both send each entry, and two
    workers each found no run of it yet. PostgreSQL only; SQLite runs one write transaction at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"scheduled:{key}"])


def beat_schedule_name(request) -> str | None:
    """The beat schedule (django-celery-beat's `periodic_task_name` header) that sent the task of this Celery
    request, or None: sent by hand, or called directly. A worker's request holds the header as an attribute;
    an eager `apply(headers=...)` under `headers`."""
    name = getattr(request, "periodic_task_name", None)
    headers = getattr(request, "headers", None)
    if name is None and isinstance(headers, dict):
        name = headers.get("periodic_task_name")
    return name if isinstance(name, str) and name else None


def schedule_interval(name: str) -> timedelta | None:
    """How often the interval schedule named `name` fires (as an admin left it), or None: no such row, or a
    crontab."""
    from django_celery_beat.models import PeriodicTask

    row = PeriodicTask.objects.filter(name=name, interval__isnull=False)
    found = row.values_list("interval__every", "interval__period").first()
    if found is None:
        return None
    every, period = found
    try:
        return timedelta(**{period: every})
    except TypeError:  # a period timedelta does not know: nothing to go by
        return None
