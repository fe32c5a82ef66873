"""A service whose error-rate target is 0% allows no error: its budget is all spent by one, and untouched
without any. It read None ("no data") either way, so a service failing every request under a zero-error
target showed no budget problem on the SLO page."""

from __future__ import annotations

import pytest

from apps.metrics import selectors
from apps.metrics.recorder import Recorder
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _traffic(route: str, *, count: int, status: int) -> None:
    process = Recorder(flush_interval=3600)
    for _ in range(count):
        process.record(route=route, method="GET", status=status, client="app", elapsed_us=5_000)
    process.flush()


def test_a_zero_error_target_is_spent_by_one_error():
    service = Service.objects.create(name="Strict", slug="strict", route_prefix="api/v1/strict/",
                                     slo_error_rate_pct=0)  # fmt: skip
    _traffic("api/v1/strict/<id>/", count=20, status=200)
    hour = selectors.slo_status(service)["windows"]["1h"]
    assert hour["error_budget_remaining"] == 1.0  # nothing spent

    _traffic("api/v1/strict/<id>/", count=20, status=503)
    hour = selectors.slo_status(service)["windows"]["1h"]
    assert hour["error_rate_met"] is False
    assert hour["error_budget_remaining"] == 0.0


def test_no_requests_is_still_no_budget_figure():
    service = Service.objects.create(name="Quiet", slug="quiet", route_prefix="api/v1/quiet/", slo_error_rate_pct=0)
    assert selectors.slo_status(service)["windows"]["1h"]["error_budget_remaining"] is None
