"""Request rollups are stamped on the database's clock, the one every host shares: a host whose clock runs off
wrote its requests into another minute, where the p95 read by the adaptive limiter and the alerts (the latest
minutes) missed them or found them late. Each request keeps the minute it happened in, on that clock.

Only the recorder's clock is moved (its module's `time`); the database's is the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import recorder as recorder_module
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import Recorder
from apps.resources.selectors import database_now
from tests.metrics.support import ShiftedClock, minutes_between

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("shift", [-95, 3635], ids=["host-95s-behind", "host-an-hour-ahead"])
def test_a_host_with_its_clock_off_writes_into_the_databases_minute(monkeypatch, shift):
    monkeypatch.setattr(recorder_module, "time", ShiftedClock(shift))
    route = f"api/v1/clock-shift-{shift}/"
    process = Recorder(flush_interval=3600, background=False)
    before = database_now()
    process.record(route=route, method="GET", status=200, client="app", elapsed_us=40_000)
    process.flush()
    after = database_now()
    row = RequestRollup.objects.get(route=route)
    assert row.count == 1
    assert row.minute in minutes_between(before, after)


def test_each_request_keeps_the_minute_it_happened_in_not_the_flushs():
    """The offset is measured at the flush and applied to each request's own stamp: a request two minutes
    older than the flush (on the host's clock) lands two minutes before the flush's minute."""
    clock = ShiftedClock(-300)  # five minutes behind the database
    process = Recorder(flush_interval=3600, background=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recorder_module, "time", clock)
        before = database_now()
        process.record(route="api/v1/clock-early/", method="GET", status=200, client="app", elapsed_us=1_000)
        clock.shift += 120  # two minutes pass on the host (the database's clock is not moved: it is real)
        process.record(route="api/v1/clock-late/", method="GET", status=200, client="app", elapsed_us=1_000)
        process.flush()
        after = database_now()
    early = RequestRollup.objects.get(route="api/v1/clock-early/").minute
    late = RequestRollup.objects.get(route="api/v1/clock-late/").minute
    assert late in minutes_between(before, after)
    assert early in minutes_between(before - timedelta(minutes=2), after - timedelta(minutes=2))


def test_a_clock_read_with_a_slow_round_trip_keeps_the_offset_measured_before(monkeypatch):
    """The offset is the database's reading against the middle of the host's two readings around it: a read
    that took 30 s (a stalled server) would put that middle 15 s off. The host's clock is moved by the test
    during the read, not slept through."""
    from apps.resources import selectors as resources_selectors

    clock = ShiftedClock(-95)
    monkeypatch.setattr(recorder_module, "time", clock)
    process = Recorder(flush_interval=3600, background=False)
    process.record(route="api/v1/clock-quick/", method="GET", status=200, client="app", elapsed_us=1_000)
    process.flush()
    measured = process._clock_offset_ms
    assert abs(measured - 95_000) < 5_000

    real = resources_selectors.database_now

    def stalled():
        reading = real()
        clock.shift += 30  # the host's clock advanced 30 s while the read was under way
        return reading

    monkeypatch.setattr(resources_selectors, "database_now", stalled)
    process.record(route="api/v1/clock-stalled/", method="GET", status=200, client="app", elapsed_us=1_000)
    process.flush()
    assert process._clock_offset_ms == measured
