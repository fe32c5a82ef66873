"""Timings beat cannot keep are refused: the crontab `0 0 31 2 *` was saved and showed enabled, but beat never ran
it and said nothing; an interval of `1 microseconds` was saved, and beat then sent 1,821 messages in 9 s."""

from datetime import date

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

pytestmark = pytest.mark.django_db

CRON = {"minute": "0", "hour": "0", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*", "timezone": "UTC"}


@pytest.mark.parametrize(
    "fields",
    [
        {"day_of_month": "31", "month_of_year": "2"},
        {"day_of_month": "30", "month_of_year": "2"},
        {"day_of_month": "31", "month_of_year": "4,6,9,11"},
    ],
)
def test_a_crontab_that_never_runs_is_refused(admin_client, fields):
    admin_client.raise_request_exception = False
    response = admin_client.post("/admin/django_celery_beat/crontabschedule/add/", {**CRON, **fields})
    assert response.status_code == 200, response.status_code  # was 302: stored
    assert "This crontab never runs" in str(response.context["adminform"].form.non_field_errors())
    assert not CrontabSchedule.objects.filter(day_of_month=fields["day_of_month"]).exists()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"day_of_month": "29", "month_of_year": "2"},  # every four years
        {"day_of_month": "13", "day_of_week": "5"},  # Friday the 13th
        {"day_of_month": "31", "month_of_year": "1-12"},
    ],
)
def test_a_crontab_that_runs_even_rarely_still_saves(admin_client, fields):
    response = admin_client.post("/admin/django_celery_beat/crontabschedule/add/", {**CRON, **fields})
    assert response.status_code == 302, response.context["adminform"].form.errors


def test_a_leap_day_crontab_runs_across_a_century_without_one():
    from apps.core.admin import crontab_never_runs

    assert not crontab_never_runs(
        CrontabSchedule(minute="0", hour="0", day_of_month="29", month_of_year="2"), start=date(2097, 3, 1)
    )  # fmt: skip  (2100 is no leap year: next is 2104)


@pytest.mark.parametrize(("every", "period"), [("1", "microseconds"), ("999999", "microseconds"), ("0", "seconds")])
def test_an_interval_under_a_second_is_refused(admin_client, every, period):
    admin_client.raise_request_exception = False
    response = admin_client.post("/admin/django_celery_beat/intervalschedule/add/", {"every": every, "period": period})
    assert response.status_code == 200, response.status_code  # was 302: stored
    assert "every" in response.context["adminform"].form.errors
    assert not IntervalSchedule.objects.filter(period=period, every=int(every)).exists()


@pytest.mark.parametrize(("every", "period"), [("1", "seconds"), ("1000000", "microseconds"), ("2", "days")])
def test_an_interval_of_a_second_or_more_still_saves(admin_client, every, period):
    response = admin_client.post("/admin/django_celery_beat/intervalschedule/add/", {"every": every, "period": period})
    assert response.status_code == 302, response.context["adminform"].form.errors
