"""Helpers shared by the tests of the accounts' admin and of the admin pages it guards (beat schedules)."""

from __future__ import annotations

from django_celery_beat.models import CrontabSchedule, PeriodicTask


def schedule_form(schedule: PeriodicTask, crontab: CrontabSchedule, **changes) -> dict:
    """The beat schedule's admin change form as posted for `schedule` on `crontab`, with `changes` made."""
    data = {"name": schedule.name, "regtask": "", "task": schedule.task, "enabled": "on", "description": "",
            "crontab": crontab.pk, "start_time_0": "", "start_time_1": "", "args": "[]", "kwargs": schedule.kwargs,
            "expires_0": "", "expires_1": "", "expire_seconds": "", "queue": "", "exchange": "", "routing_key": "",
            "priority": "", "headers": "{}"}  # fmt: skip
    return {**data, **changes}
