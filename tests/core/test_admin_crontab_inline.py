"""The crontab change page's read-only inline (the schedules using it) is no work on a post: a posted
TOTAL_FORMS of 99999999 built and rendered a thousand empty forms, then refused the save."""

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

CRON = {"minute": "0", "hour": "4", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*", "timezone": "UTC"}


@pytest.fixture
def crontab() -> CrontabSchedule:
    schedule = CrontabSchedule.objects.create(minute="30", hour="2", timezone="UTC")
    PeriodicTask.objects.create(name="Nightly optimize", task="optimizer.scheduled_run", crontab=schedule)
    return schedule


def test_a_huge_posted_inline_form_count_builds_no_forms_and_saves(admin_client, crontab):
    response = admin_client.post(f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
                                 {**CRON, "periodictask_set-TOTAL_FORMS": 99999999,
                                  "periodictask_set-INITIAL_FORMS": 0})  # fmt: skip
    assert response.status_code == 302, response.context and response.context.get("inline_admin_formsets")
    crontab.refresh_from_db()
    assert (crontab.minute, crontab.hour) == ("0", "4")


def test_an_invalid_post_builds_no_inline_forms(admin_client, crontab):
    response = admin_client.post(f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
                                 {**CRON, "minute": "61", "periodictask_set-TOTAL_FORMS": 99999999,
                                  "periodictask_set-INITIAL_FORMS": 0})  # fmt: skip
    assert response.status_code == 200
    assert "minute" in response.context["adminform"].form.errors
    assert response.context["inline_admin_formsets"] == []


def test_the_page_still_lists_the_schedules_using_it(admin_client, crontab):
    response = admin_client.get(f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/")
    assert response.status_code == 200
    assert "Nightly optimize" in response.content.decode()
    posted = admin_client.post(f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/change/",
                               {**CRON, "periodictask_set-TOTAL_FORMS": 1, "periodictask_set-INITIAL_FORMS": 1,
                                "periodictask_set-0-id": crontab.periodictask_set.get().pk})  # fmt: skip
    assert posted.status_code == 302
