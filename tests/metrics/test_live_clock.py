"""The live feed reads the last minute on the database's clock, which stamps the request rollups: a live
process whose clock ran off showed the minute before or after the one being written (no traffic at all).

Only the selectors' clock (their module's `timezone`) is moved; the database's is the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import selectors
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import Recorder, new_histogram
from apps.resources.selectors import database_now
from tests.helpers import ShiftedTimezone

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("shift", [timedelta(minutes=10), timedelta(minutes=-6)], ids=["ahead", "behind"])
def test_a_live_process_whose_clock_is_off_shows_the_last_minutes_traffic(monkeypatch, shift):
    """Ahead, it read minutes not written yet; behind, minutes long past with the last one (here a slow burst
    five minutes ago, on the database's clock, that the last minute's p95 must not show)."""
    slow = new_histogram()
    slow.record_value(2_000_000, 500)
    five_minutes_ago = (database_now() - timedelta(minutes=5)).replace(second=0, microsecond=0)
    RequestRollup.objects.create(minute=five_minutes_ago, route="api/v1/live-clock/", method="GET",
                                 status_class="2xx", client="app", count=500, histogram=slow.encode())  # fmt: skip
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(12):
        process.record(route="api/v1/live-clock/", method="GET", status=200, client="app", elapsed_us=80_000)
    process.flush()
    monkeypatch.setattr(selectors, "timezone", ShiftedTimezone(shift))
    snapshot = selectors.live_snapshot()
    assert snapshot["overall"]["rps"] > 0
    assert snapshot["overall"]["p95_ms"] == pytest.approx(80, rel=0.02)
