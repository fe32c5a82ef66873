"""The request series answer no data (None, JSON null) for the steps before the window's first rollup, where
nothing was measured, and 0 for a quiet step after it: a chart drew a flat "0 req/s" line over the half hour
before a service's first request, as if it had been measured idle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics import selectors
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.services.models import Service

pytestmark = pytest.mark.django_db

# Within the days the minute rollups are kept, so the API reads them per minute.
SINCE = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
UNTIL = SINCE + timedelta(minutes=6)
ROUTE = "api/v1/patients/<id>/"


def _rollup(minute: int, *, count: int, status_class: str = "200", errors: int = 0) -> RequestRollup:
    histogram = new_histogram()
    histogram.record_value(40_000, count)
    return RequestRollup(minute=SINCE + timedelta(minutes=minute), route=ROUTE, method="GET",
                         status_class=status_class, client="app", count=count, errors=errors,
                         total_ms=40.0 * count, max_ms=40.0, histogram=histogram.encode())  # fmt: skip


def _values(metric: str) -> list:
    return [value for _, value in selectors.time_series(metric=metric, since=SINCE, until=UNTIL, step_seconds=60)]


@pytest.fixture
def traffic():
    """Nothing in minutes 0-1, 6 requests (3 failing) in minute 2, none in 3, a refused one in 4, 12 in 5."""
    RequestRollup.objects.bulk_create(
        [_rollup(2, count=6, errors=3), _rollup(4, count=1, status_class="429"), _rollup(5, count=12)]
    )


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("requests", [None, None, 6, 0, 0, 12]),
        ("rps", [None, None, 0.1, 0.0, 0.0, 0.2]),
        # A refusal is a measurement too: from minute 2 on the routes were measured, refusing none.
        ("rate_limited", [None, None, 0, 0, 1, 0]),
        ("rate_limited_rps", [None, None, 0.0, 0.0, 0.017, 0.0]),
        ("error_rate_pct", [None, None, 50.0, None, None, 0.0]),
        ("p95_ms", [None, None, pytest.approx(40, rel=0.02), None, None, pytest.approx(40, rel=0.02)]),
    ],
)
def test_steps_before_the_first_rollup_are_no_data_and_quiet_steps_after_it_are_zero(
    traffic, metric, expected, django_assert_max_num_queries
):
    with django_assert_max_num_queries(1):  # the first step is read from the rows fetched anyway
        assert _values(metric) == expected


def test_a_window_without_any_rollup_is_no_data_throughout():
    assert _values("requests") == [None] * 6 and _values("rps") == [None] * 6


def test_a_minute_of_refusals_only_is_measured_and_served_none():
    RequestRollup.objects.bulk_create([_rollup(1, count=5, status_class="429")])
    assert _values("requests") == [None, 0, 0, 0, 0, 0]
    assert _values("rate_limited") == [None, 5, 0, 0, 0, 0]


def test_the_api_answers_json_null_before_the_first_rollup(traffic, staff_api):
    Service.objects.create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    response = staff_api.get(
        "/api/v1/metrics/series/",
        {"metric": "requests", "service": "patients", "start": SINCE.isoformat(), "end": UNTIL.isoformat(), "step": 60},
    )
    assert response.status_code == 200
    assert f'"points":[["{SINCE.isoformat()}",null]'.encode() in response.content
    assert [value for _, value in response.json()["points"]] == [None, None, 6, 0, 0, 12]
