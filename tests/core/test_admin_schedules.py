"""Beat schedules' forms answer bad input with field errors: django-celery-beat's own admin answered three
kinds of it with a 500."""

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule

from apps.accounts.roles import OPERATORS
from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db


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


RETIME = {"enabled": "on", "description": "", "start_time_0": "", "start_time_1": ""}


@pytest.mark.parametrize(("zone", "day", "time"), [("America/New_York", "9999-12-31", "23:00:00"),
                                                   ("Asia/Tokyo", "0001-01-01", "01:00:00")])  # fmt: skip
@pytest.mark.parametrize("field", ["start_time", "expires"])
def test_a_time_past_year_9999_or_before_year_1_in_utc_is_a_field_error(admin_client, nightly, settings, zone, day,
                                                                         time, field):  # fmt: skip
    """In a zone west of UTC the form's last evening of year 9999 is year 10,000 in UTC: PostgreSQL stored it and
    psycopg could not read it back, so the schedules' list, that schedule's own page (where it would be fixed)
    and beat's every read of the schedules were a 500 or a crash. East of UTC, year 1's first hours likewise."""
    settings.TIME_ZONE = zone
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, **{f"{field}_0": day, f"{field}_1": time}))  # fmt: skip
    assert response.status_code == 200 and field in response.context["adminform"].form.errors
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200


def test_an_operator_s_start_time_past_year_9999_in_utc_is_a_field_error(operator, nightly, settings):
    settings.TIME_ZONE = "America/New_York"
    task, crontab = nightly
    form = {**RETIME, "crontab": crontab.pk, "start_time_0": "9999-12-31", "start_time_1": "23:00:00"}
    response = operator.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", form)
    assert response.status_code == 200 and "start_time" in response.context["adminform"].form.errors
    assert operator.get("/admin/django_celery_beat/periodictask/").status_code == 200


def test_a_far_but_readable_start_time_still_saves(admin_client, nightly, settings):
    settings.TIME_ZONE = "America/New_York"
    task, crontab = nightly
    form = schedule_form(task, crontab, start_time_0="9999-12-30", start_time_1="12:00:00")
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", form)
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.start_time.year == 9999
