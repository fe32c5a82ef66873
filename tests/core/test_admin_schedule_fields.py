"""Beat schedules' admin forms answer a bad hidden initial time zone and a bad registered task with field
errors, never a 500, and store only a task that is registered."""

import pytest

from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db

CRON = {"minute": "0", "hour": "4", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*", "timezone": "UTC",
        "periodictask_set-TOTAL_FORMS": 0, "periodictask_set-INITIAL_FORMS": 0}  # fmt: skip


@pytest.mark.parametrize("initial", ["A" * 300, "a\x00b", "/etc/passwd", "../../etc/passwd", "Not/AZone"])
def test_a_bad_hidden_initial_time_zone_is_no_500(admin_client, nightly, initial):
    _, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
                                 {**CRON, "initial-timezone": initial})  # fmt: skip
    assert response.status_code == 302, response.status_code
    crontab.refresh_from_db()
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("0", "4", "UTC")


@pytest.mark.parametrize("regtask", ["a\x00b", "١٢", "no.such.task", "optimizer.scheduled_run\x00"])
def test_a_registered_task_that_is_not_registered_is_a_field_error(admin_client, nightly, regtask):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, regtask=regtask))  # fmt: skip
    assert response.status_code == 200, response.status_code
    assert "regtask" in response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.task == "optimizer.scheduled_run"


def test_a_registered_task_still_saves(admin_client, nightly):
    task, crontab = nightly
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
                                 schedule_form(task, crontab, regtask="optimizer.scheduled_run", task=""))  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.task == "optimizer.scheduled_run"
