"""A run's endpoints table is built from our own samples, as its summary is: each endpoint's latencies are
those of its successful requests. Locust's stats CSV mixed its failures in, so an endpoint answering half
its requests with an instant 503 read twice as fast as it serves."""

from __future__ import annotations

import pytest

from apps.benchmarks import analysis, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_endpoint_latencies_are_of_successful_requests_only(sleepy):
    sleepy.delay_ms = 100.0  # every success takes at least this; the failures none of it
    sleepy.fail_every_other = True
    service, _ = service_ensure(slug="sleepy", name="Sleepy service", base_url=sleepy.url)
    plan = BenchmarkPlan.objects.create(
        name="half failing", service=service, users=2, spawn_rate=2, duration_seconds=5,
        requests=[{"name": "card", "method": "get", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_execute(run_id=services.benchmark_run_create(plan=plan).pk)
    assert run.status == BenchmarkRun.Status.SUCCEEDED, run.error
    [card] = run.endpoints
    assert card["name"] == "card" and card["method"] == "GET"
    assert card["requests"] == run.summary["requests"] and card["failures"] == run.summary["errors"] > 0
    for key in ("avg_ms", "p50_ms", "p95_ms", "max_ms"):
        assert card[key] >= sleepy.delay_ms, (key, card)
    assert card["p95_ms"] == run.summary["p95_ms"]  # one endpoint: the summary's figures


def test_rows_follow_the_mix_with_counts_of_every_request():
    samples = [[0.1, 5.0, 5.0, True, "a"], [0.2, 1.0, 1.0, False, "a"], [0.3, 9.0, 9.0, False, "b"],
               [0.4, 7.0, 7.0, True, "other"]]  # fmt: skip
    totals = analysis.Totals.of(samples)
    rows = analysis.endpoint_rows(samples, totals, {"b": "POST", "a": "GET"})
    assert [(r["name"], r["method"], r["requests"], r["failures"]) for r in rows] == [
        ("b", "POST", 1, 1), ("a", "GET", 2, 1), ("other", "", 1, 0),
    ]  # fmt: skip
    assert rows[0]["p50_ms"] is None and rows[1]["p50_ms"] == pytest.approx(5.0, abs=0.01)
