"""A history asked for with `now` on the hospital's clock (the brief's API passes `datetime.now()`, made aware
in TIME_ZONE) began on the local whole hour: in Asia/Kolkata (+05:30) that is hh:30 in UTC, so the first UTC
hour held only its last 30 minutes of rollups and read half the request rate it had (0.5 req/s beside 1.0)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.scaling import services
from apps.scaling.history import hourly_history
from apps.services.models import Service

pytestmark = pytest.mark.django_db

FIRST = datetime(2026, 10, 31, 12, tzinfo=UTC)


def _one_request_a_second(route: str, hours: int) -> None:
    histogram = new_histogram()
    histogram.record_value(20_000)
    blob = histogram.encode()
    RequestRollup.objects.bulk_create(
        [RequestRollup(minute=FIRST + timedelta(hours=hour, minutes=m), route=route, method="GET", status_class="2xx",
                       client="c", count=600, histogram=blob, p95_ms=20)
         for hour in range(hours) for m in range(0, 60, 10)]
    )  # fmt: skip


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns", "America/New_York"])
def test_a_history_to_a_local_now_begins_on_a_whole_utc_hour(settings, zone):
    settings.TIME_ZONE = zone
    service = Service.objects.create(name="steady", slug="steady", route_prefix="api/steady/")
    policy = services.scaling_policy_ensure(service, history_source="metrics")[0]
    _one_request_a_second("api/steady/x/", 72)
    now = (FIRST + timedelta(hours=72, minutes=5)).astimezone(ZoneInfo(zone))
    series = hourly_history(policy, "request_rate", now=now, days=2)
    assert set(series) == {1.0}, series.head(3)
    assert series.index[0].tz_convert(UTC) == FIRST + timedelta(days=1), series.index[0]
    assert len(series) == 48
