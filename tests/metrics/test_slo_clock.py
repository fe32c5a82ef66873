"""SLO windows end on the database's clock, which stamps the request rollups: a process whose clock ran ahead
read windows nothing was written in yet (an hour ahead, an empty 1 h window), one behind left out the newest
minutes. Only the selectors' clock (their module's `timezone`) is moved; the database's is the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.metrics import selectors
from apps.metrics.recorder import Recorder
from apps.services.models import Service
from tests.helpers import ShiftedTimezone

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("shift", [timedelta(hours=2), timedelta(minutes=-90)], ids=["2h-ahead", "90min-behind"])
def test_a_reader_whose_clock_is_off_sees_the_last_minutes_requests(monkeypatch, shift):
    service = Service.objects.create(name="SLO clock", slug="slo-clock", route_prefix="api/v1/slo-clock/")
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(20):
        process.record(route="api/v1/slo-clock/x/", method="GET", status=200, client="app", elapsed_us=50_000)
    process.flush()
    monkeypatch.setattr(selectors, "timezone", ShiftedTimezone(shift))
    windows = selectors.slo_status(service)["windows"]
    assert [windows[label]["count"] for label in ("1h", "24h", "7d")] == [20, 20, 20]
