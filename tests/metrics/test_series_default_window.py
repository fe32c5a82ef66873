"""The series API's default window (no `start`): the hour before `end`, begun on a whole step. Begun at `end`
less an hour to the microsecond, every step straddled two minutes: each minute's requests were shown under
the label of the minute before, and the requests of the minute the window began in were left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import Recorder
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def test_a_minutes_requests_are_shown_under_that_minute(staff_api):
    Service.objects.create(name="Window", slug="window", route_prefix="api/v1/default-window/")
    process = Recorder(flush_interval=3600)
    for _ in range(3):
        process.record(route="api/v1/default-window/", method="GET", status=200, client="app", elapsed_us=900)
    process.flush()
    minute = RequestRollup.objects.get(route="api/v1/default-window/").minute
    end = minute + timedelta(minutes=30, seconds=17, microseconds=250_000)

    response = staff_api.get(
        "/api/v1/metrics/series/",
        {"metric": "requests", "service": "window", "step": 60, "end": end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )
    assert response.status_code == 200, response.content
    points = {datetime.fromisoformat(at): value for at, value in response.json()["points"]}
    assert points[minute] == 3
    # the steps before the first rollup are no data (null), the quiet ones after it 0 requests
    assert all(points[at] is None for at in points if at < minute)
    assert sum(points[at] for at in points if at >= minute) == 3
    assert min(points) <= end - timedelta(hours=1)  # the whole hour, from the step it begins in
    assert all(at.second == 0 and at.microsecond == 0 and at.tzinfo == UTC for at in points)
