"""`/api/v1/metrics/series/`'s `start` and `end` were read, without an offset, on the hospital's clock (TIME_ZONE):
on the night the clocks go back, 01:00 in New York names two instants an hour apart and the first was taken
without a word, so the second 01:00 could not be asked for that way and a chart meant for it showed the hour
before. As the other /api/v1/ bounds (vitals, encounters, audit), a time needs its offset (a 400 on the field);
a bare date is the start of that day on the hospital's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.django_db

SERIES = "/api/v1/metrics/series/"


def _first_step(response) -> datetime:
    assert response.status_code == 200, response.content[:300]
    return min(datetime.fromisoformat(at) for at, _ in response.json()["points"])


def test_a_time_without_its_offset_is_a_400_on_the_field(settings, staff_api):
    settings.TIME_ZONE = "America/New_York"
    for name, bounds in (
        ("start", {"start": "2026-11-01T01:00:00", "end": "2026-11-01T02:00:00-05:00"}),
        ("end", {"start": "2026-11-01T01:00:00-05:00", "end": "2026-11-01T02:00:00"}),
    ):
        response = staff_api.get(SERIES, {"metric": "requests", "step": 3600, **bounds})
        assert response.status_code == 400, response.content[:300]  # old: 200, 01:00 the first time (EDT)
        assert "offset" in response.json()["errors"][name][0]


def test_either_0100_is_asked_for_with_its_offset(settings, staff_api):
    settings.TIME_ZONE = "America/New_York"
    for offset, first in (
        ("-04:00", datetime(2026, 11, 1, 5, tzinfo=UTC)),
        ("-05:00", datetime(2026, 11, 1, 6, tzinfo=UTC)),
    ):
        bounds = {"start": f"2026-11-01T01:00:00{offset}", "end": f"2026-11-01T02:00:00{offset}"}
        assert _first_step(staff_api.get(SERIES, {"metric": "requests", "step": 3600, **bounds})) == first


@pytest.mark.parametrize(("zone", "first"), [("America/New_York", datetime(2026, 11, 1, 4, tzinfo=UTC)),
                                             ("UTC", datetime(2026, 11, 1, tzinfo=UTC))])  # fmt: skip
def test_a_bare_date_is_the_start_of_that_day_on_the_hospitals_clock(settings, staff_api, zone, first):
    settings.TIME_ZONE = zone
    bounds = {"start": "2026-11-01", "end": "2026-11-01T12:00:00Z"}
    assert _first_step(staff_api.get(SERIES, {"metric": "requests", "step": 3600, **bounds})) == first
