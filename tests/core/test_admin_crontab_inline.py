"""The crontab change page's read-only inline (the schedules using it) is no work on a post: a posted
TOTAL_FORMS of 99999999 built and rendered a thousand empty forms, then refused the save."""

import pytest
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

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


def _interval():
    return IntervalSchedule.objects.create(every=5, period="minutes"), {"every": "10", "period": "minutes"}


def _solar():
    schedule = SolarSchedule.objects.create(event="sunrise", latitude="52.5", longitude="13.4")
    return schedule, {"event": "sunset", "latitude": "52.5", "longitude": "13.4"}


def _clocked():
    schedule = ClockedSchedule.objects.create(clocked_time=timezone.now())
    return schedule, {"clocked_time_0": "2030-01-02", "clocked_time_1": "03:04:05"}


@pytest.mark.parametrize("make", [_interval, _solar, _clocked])
def test_the_other_timings_build_no_inline_forms_on_a_post_either(admin_client, make):
    schedule, data = make()
    field = schedule._meta.model_name.removesuffix("schedule")  # PeriodicTask.interval, .solar, .clocked
    PeriodicTask.objects.create(name="Uses it", task="optimizer.scheduled_run", one_off=True, **{field: schedule})
    url = f"/admin/django_celery_beat/{schedule._meta.model_name}/{schedule.pk}/change/"
    assert "Uses it" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {**data, "periodictask_set-TOTAL_FORMS": 99999999,
                                       "periodictask_set-INITIAL_FORMS": 0})  # fmt: skip
    assert response.status_code == 302, response.context and response.context["inline_admin_formsets"]
