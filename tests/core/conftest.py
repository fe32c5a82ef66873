"""Fixtures shared by the core tests."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask


@pytest.fixture
def nightly() -> tuple[PeriodicTask, CrontabSchedule]:
    """The nightly optimize schedule, on a crontab of its own: what the beat admin's tests edit."""
    crontab = CrontabSchedule.objects.create(minute="30", hour="2", timezone="UTC")
    task = PeriodicTask.objects.create(
        name="Nightly optimize", task="optimizer.scheduled_run", crontab=crontab, kwargs='{"target": "all"}'
    )
    return task, crontab
