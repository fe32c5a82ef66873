"""Beat schedules' forms answer bad input with field errors: django-celery-beat's own admin answered three
kinds of it with a 500."""

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.accounts.roles import OPERATORS
from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def nightly() -> tuple[PeriodicTask, CrontabSchedule]:
    crontab = CrontabSchedule.objects.create(minute="30", hour="2", timezone="UTC")
    task = PeriodicTask.objects.create(
        name="Nightly optimize", task="optimizer.scheduled_run", crontab=crontab, kwargs='{"target": "all"}'
    )
    return task, crontab


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=OPERATORS)])  # Operators add and change crontabs
    client.force_login(user)
    client.raise_request_exception = False
    return client


CRON = {"minute": "0", "hour": "4", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*", "timezone": "UTC",
        "periodictask_set-TOTAL_FORMS": 0, "periodictask_set-INITIAL_FORMS": 0}  # fmt: skip


@pytest.mark.parametrize(("field", "value"), [("minute", "-1"), ("hour", "-3"), ("day_of_week", "-1"),
                                              ("minute", "61"), ("month_of_year", "13")])  # fmt: skip
def test_an_impossible_crontab_value_is_a_field_error(operator, field, value):
    response = operator.post("/admin/django_celery_beat/crontabschedule/add/", {**CRON, field: value})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not CrontabSchedule.objects.filter(**{field: value}).exists()


def test_a_valid_crontab_still_saves_and_reads(operator):
    response = operator.post("/admin/django_celery_beat/crontabschedule/add/", CRON)
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = CrontabSchedule.objects.get(minute="0", hour="4")
    assert "04:00" in operator.get(f"/admin/django_celery_beat/crontabschedule/{schedule.pk}/change/").content.decode()


def test_an_administrator_s_empty_headers_mean_none_not_a_500(admin_client, nightly):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, headers=""))  # fmt: skip
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.headers == "{}"
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, headers="[1, 2]"))  # fmt: skip
    assert response.status_code == 200 and "headers" in response.context["adminform"].form.errors


def test_a_task_name_its_field_refuses_is_a_field_error(admin_client, nightly):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, task="optimizer.\x00scheduled_run"))  # fmt: skip
    assert response.status_code == 200
    assert "task" in response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.task == "optimizer.scheduled_run"
