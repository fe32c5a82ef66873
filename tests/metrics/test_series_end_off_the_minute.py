"""A request series whose `end` falls inside a minute that has ended (a whole hour past the minute rollups' 30
days). That minute's rollup holds its requests up to its own end, past `end`: the last step counted them all
and divided them by the seconds of the step before `end` only, so a window ending 15 s into a minute read its
last rate four times what it was. The window now ends on the whole minute (hour) before `end`: the last point
is of a whole minute, and nothing from after `end` is counted. A minute still in progress (`end` is now) is
kept: its rollup holds only the requests up to now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import RequestRollup
from apps.services.models import Service
from tests.metrics.support import five_ms_rollup

pytestmark = pytest.mark.django_db

ROUTE = "api/v1/end-off-minute/"


def _points(api, metric: str, start: datetime, end: datetime, step: int) -> list:
    response = api.get("/api/v1/metrics/series/", {
        "metric": metric, "service": "end-off-minute", "step": step, "start": start.isoformat(),
        "end": end.isoformat(),
    })  # fmt: skip
    assert response.status_code == 200, response.content
    return [(datetime.fromisoformat(at), value) for at, value in response.json()["points"]]


@pytest.fixture
def minutes():
    """Three requests in one minute, six in the next, an hour ago."""
    Service.objects.create(name="End off minute", slug="end-off-minute", route_prefix=ROUTE)
    first = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    RequestRollup.objects.bulk_create(
        [five_ms_rollup(ROUTE, first, 3), five_ms_rollup(ROUTE, first + timedelta(minutes=1), 6)]
    )
    return first


def test_the_last_rate_is_of_a_whole_minute(staff_api, minutes):
    points = _points(staff_api, "rps", minutes, minutes + timedelta(minutes=1, seconds=15), 60)
    assert points == [(minutes, 0.05)]  # 3 requests in 60 s; the next minute's 6 read 0.4/s over its first 15 s


def test_no_requests_from_after_end_are_counted(staff_api, minutes):
    points = _points(staff_api, "requests", minutes, minutes + timedelta(minutes=1, seconds=15), 60)
    assert points == [(minutes, 3)]


def test_an_end_on_a_whole_minute_is_kept(staff_api, minutes):
    points = _points(staff_api, "requests", minutes, minutes + timedelta(minutes=2), 60)
    assert points == [(minutes, 3), (minutes + timedelta(minutes=1), 6)]


def test_the_minute_in_progress_is_kept(staff_api):
    """`end` now, as the dashboard asks: the minute in progress is its last point, not left out."""
    Service.objects.create(name="End off minute", slug="end-off-minute", route_prefix=ROUTE)
    end = timezone.now().astimezone(UTC)
    start = end.replace(second=0, microsecond=0) - timedelta(minutes=5)
    points = _points(staff_api, "requests", start, end + timedelta(seconds=1), 60)
    assert points[-1][0] == (end + timedelta(seconds=1)).replace(second=0, microsecond=0)


def test_a_window_without_a_whole_minute_is_a_400_on_end(staff_api, minutes):
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": "requests", "service": "end-off-minute", "step": 60, "start": minutes.isoformat(),
        "end": (minutes + timedelta(seconds=40)).isoformat(),
    })  # fmt: skip
    assert response.status_code == 400
    assert "whole minute" in response.json()["errors"]["end"][0]


def test_past_the_minute_rollups_the_window_ends_on_a_whole_hour(staff_api):
    Service.objects.create(name="End off minute", slug="end-off-minute", route_prefix=ROUTE)
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    RequestRollup.objects.bulk_create(
        [
            five_ms_rollup(ROUTE, hour, 7200, resolution="1h"),
            five_ms_rollup(ROUTE, hour + timedelta(hours=1), 3600, resolution="1h"),
        ]
    )
    points = _points(staff_api, "rps", hour, hour + timedelta(hours=1, minutes=10), 3600)
    assert points == [(hour, 2.0)]
