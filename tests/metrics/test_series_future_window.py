"""A series window wholly in the future is a mistake (a typo in a year, a clock far ahead): a 400 naming the
field, not 200 with empty points read as "no traffic"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("metric", ["rps", "p95_ms", "cpu_pct", "cache_hit_rate_pct"])
@pytest.mark.parametrize(
    ("ahead", "span"), [(timedelta(days=365), timedelta(hours=1)), (timedelta(minutes=5), timedelta(hours=2))]
)
def test_a_window_in_the_future_is_a_400_on_start(staff_api, metric, ahead, span):
    start = timezone.now() + ahead
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": metric, "step": 300, "start": start.isoformat(), "end": (start + span).isoformat()
    })  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"]["start"] == ["In the future: a series reads what was recorded up to now."]


def test_a_window_reaching_past_now_is_still_answered(staff_api):
    now = timezone.now()
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": "rps", "step": 300, "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    })  # fmt: skip
    assert response.status_code == 200 and len(response.json()["points"]) == 24
