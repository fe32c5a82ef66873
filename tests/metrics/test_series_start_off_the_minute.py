"""A request series whose `start` is not on a whole minute (a whole hour past the minute rollups' 30 days).

Request figures are rollups of whole minutes, each stamped with its start. From 12:00:30, the minute 12:00 was
left out and each step [12:00:30, 12:01:30) held the minute 12:01's requests under the label 12:00:30: every
point named a time 30 s before the requests it counted. The window now begins on the first whole minute (hour)
at or after `start`: no requests from before `start` are counted, and each point is labelled with the minute
(hour) its requests are of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import RequestRollup
from apps.services.models import Service
from tests.metrics.support import five_ms_rollup

pytestmark = pytest.mark.django_db

ROUTE = "api/v1/off-minute/"


def _series(api, metric: str, start: datetime, end: datetime, step: int):
    return api.get("/api/v1/metrics/series/", {
        "metric": metric, "service": "off-minute", "step": step, "start": start.isoformat(), "end": end.isoformat(),
    })  # fmt: skip


@pytest.fixture
def minutes():
    """Three requests in one minute, five in the next, an hour ago."""
    Service.objects.create(name="Off minute", slug="off-minute", route_prefix=ROUTE)
    first = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    RequestRollup.objects.bulk_create(
        [five_ms_rollup(ROUTE, first, 3), five_ms_rollup(ROUTE, first + timedelta(minutes=1), 5)]
    )
    return first


@pytest.mark.parametrize("offset", [timedelta(seconds=30), timedelta(seconds=59, microseconds=999_999),
                                    timedelta(microseconds=1)])  # fmt: skip
def test_each_point_is_labelled_with_the_minute_its_requests_are_of(staff_api, minutes, offset):
    response = _series(staff_api, "requests", minutes + offset, minutes + timedelta(minutes=3), 60)
    assert response.status_code == 200, response.content
    points = [(datetime.fromisoformat(at), value) for at, value in response.json()["points"]]
    # The minute `start` falls in began before it: none of its requests are counted, nor shown under its label.
    assert points == [(minutes + timedelta(minutes=1), 5), (minutes + timedelta(minutes=2), 0)]


def test_the_rate_is_of_whole_minutes(staff_api, minutes):
    response = _series(staff_api, "rps", minutes + timedelta(seconds=20), minutes + timedelta(minutes=2), 60)
    assert response.status_code == 200, response.content
    [(at, rps)] = response.json()["points"]
    assert datetime.fromisoformat(at) == minutes + timedelta(minutes=1) and rps == pytest.approx(5 / 60, abs=0.001)


def test_a_start_on_a_whole_minute_is_kept(staff_api, minutes):
    response = _series(staff_api, "requests", minutes, minutes + timedelta(minutes=2), 60)
    assert [(datetime.fromisoformat(at), value) for at, value in response.json()["points"]] == [
        (minutes, 3), (minutes + timedelta(minutes=1), 5),
    ]  # fmt: skip


def test_a_window_without_a_whole_minute_is_a_400_on_start(staff_api, minutes):
    response = _series(staff_api, "requests", minutes + timedelta(seconds=10), minutes + timedelta(seconds=50), 60)
    assert response.status_code == 400
    assert "whole minute" in response.json()["errors"]["start"][0]


def test_past_the_minute_rollups_the_window_begins_on_a_whole_hour(staff_api):
    Service.objects.create(name="Off minute", slug="off-minute", route_prefix=ROUTE)
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    RequestRollup.objects.bulk_create(
        [
            five_ms_rollup(ROUTE, hour, 7, resolution="1h"),
            five_ms_rollup(ROUTE, hour + timedelta(hours=1), 11, resolution="1h"),
        ]
    )
    response = _series(staff_api, "requests", hour + timedelta(minutes=10), hour + timedelta(hours=3), 3600)
    assert response.status_code == 200, response.content
    points = [(datetime.fromisoformat(at), value) for at, value in response.json()["points"]]
    assert points == [(hour + timedelta(hours=1), 11), (hour + timedelta(hours=2), 0)]
