"""The limiter's refusals (429) are no requests of the service's: the SLO figures, the live feed and the request
series read the requests served, and the refusals are reported apart (`rate_limited`, `rate_limited_rps`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import selectors
from apps.services.models import Service
from tests.metrics.support import record_traffic

pytestmark = pytest.mark.django_db


@pytest.fixture
def storm():
    """60 requests served at 900 ms, half of them failing, beside 2,000 refusals answered in 2 ms."""
    service = Service.objects.create(name="Vitals", slug="vitals", route_prefix="api/v1/vitals/", slo_p95_ms=500)
    record_traffic(900, count=30, status=200)
    record_traffic(900, count=30, status=503)
    record_traffic(2, count=2000, status=429)
    return service


def test_the_slo_reads_the_requests_served_and_counts_the_refusals_apart(storm):
    hour = selectors.slo_status(storm)["windows"]["1h"]
    assert hour["count"] == 60 and hour["errors"] == 30
    assert hour["error_rate_pct"] == 50.0  # not 1.46
    assert hour["p95_ms"] == pytest.approx(900, rel=0.02) and hour["p95_met"] is False  # not 2 ms
    assert hour["rate_limited"] == 2000


def test_the_slo_api_reports_the_refusals(staff_api, storm):
    [result] = staff_api.get("/api/v1/metrics/slo/").json()["results"]
    assert result["windows"]["1h"]["count"] == 60 and result["windows"]["1h"]["rate_limited"] == 2000


def test_the_live_rows_read_the_requests_served_and_the_refusals_apart(storm):
    snapshot = selectors.live_snapshot()
    for row in (snapshot["services"][0], snapshot["overall"]):
        assert row["error_rate_pct"] == 50.0
        assert row["p95_ms"] == pytest.approx(900, rel=0.02)
        assert row["rate_limited"] == 2000
        # the window is 60 to 120 s: this minute and the one before
        assert 2000 / 120 <= row["rate_limited_rps"] <= 2000 / 60
        assert 60 / 120 <= row["rps"] <= 60 / 60


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("requests", 60), ("error_rate_pct", 50.0), ("rate_limited", 2000), ("rate_limited_rps", round(2000 / 3600, 3))],
)
def test_the_request_series_leave_the_refusals_out_and_chart_them_apart(staff_api, storm, metric, expected):
    end = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": metric, "service": "vitals", "step": 3600, "start": (end - timedelta(hours=1)).isoformat(),
        "end": end.isoformat(),
    })  # fmt: skip
    assert response.status_code == 200
    assert [value for _, value in response.json()["points"]] == [expected]


def test_the_p95_series_is_of_the_requests_served(storm):
    end = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    [(_, p95)] = selectors.time_series(metric="p95_ms", since=end - timedelta(hours=1), until=end, step_seconds=3600,
                                       route_prefixes=["api/v1/vitals/"])  # fmt: skip
    assert p95 == pytest.approx(900, rel=0.02)
