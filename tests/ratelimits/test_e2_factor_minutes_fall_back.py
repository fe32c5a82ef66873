"""The Rate limits page reads each past minute against the adaptive factor in force then, by the minutes the
factor changed in. Those minutes were cut on the hospital's clock (TIME_ZONE) and made aware again at the first
of two equal wall-clock times, so on the night the clocks go back a change in the repeated hour (01:10 EST) was
put an hour early (01:10 EDT): the minutes between read as already tightened, and a client at its limit read as
a third over it. Minutes are cut in UTC, as the rollups they are matched with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models.functions import Now
from django.test import override_settings

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

pytestmark = pytest.mark.django_db

# 2026-11-01 in New York: 02:00 EDT (06:00Z) goes back to 01:00 EST; 06:10:30Z is 01:10:30 EST, the second 01:10.
CHANGED_AT = datetime(2026, 11, 1, 6, 10, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def _route(scope: str) -> str:
    return next(route for route, named in selectors.route_scopes().items() if named == scope)


def _requests(scope: str, *, client: str, count: int, minute: datetime) -> None:
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=_route(scope), method="GET", status_class="2xx",
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


def _tightened_in_the_repeated_hour() -> RateLimitPolicy:
    """audit_logs (30/min) halved at 01:10:30 EST, its signal read just now (not lapsed)."""
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    assert (policy.requests, policy.period_seconds) == (30, 60)
    RateLimitPolicy.objects.filter(pk=policy.pk).update(current_factor=0.5, signal_read_at=Now())
    change = RateLimitAdjustment.objects.create(policy=policy, direction="tighten", old_factor=1.0, new_factor=0.5,
                                                reason="CPU 100% > 70%")  # fmt: skip
    RateLimitAdjustment.objects.filter(pk=change.pk).update(at=CHANGED_AT)
    return policy


@pytest.mark.parametrize("zone", ["America/New_York", "UTC"])
def test_the_minute_of_a_change_is_its_real_minute(zone):
    policy = _tightened_in_the_repeated_hour()
    with override_settings(TIME_ZONE=zone):
        changes = selectors.factor_changes_by_minute(since=NOW - timedelta(hours=2))[policy.pk]
    assert [change.minute for change in changes] == [datetime(2026, 11, 1, 6, 10, tzinfo=UTC)]  # old: 05:10Z (NY)


@pytest.mark.parametrize("zone", ["America/New_York", "UTC"])
def test_a_minute_before_the_change_reads_against_the_limit_then(zone):
    """20 attempts at 05:50Z (01:50 EDT, 20 minutes before the tightening) are 20 of 30, not 20 of 15."""
    _tightened_in_the_repeated_hour()
    _requests("audit_logs", client="compliance-export", count=20, minute=datetime(2026, 11, 1, 5, 50, tzinfo=UTC))
    with override_settings(TIME_ZONE=zone):
        rows = selectors.policy_overview(now=NOW, minutes=60)
    usage = {row["scope"]: row for row in rows}["audit_logs"]["usage"]
    assert usage["busiest_client_minute"] == "2026-11-01T05:50:00+00:00"
    assert usage["busiest_client_limit_per_minute"] == 30  # old code in New York: 15 (the change an hour early)
    assert usage["busiest_client_share"] == pytest.approx(0.6667)
