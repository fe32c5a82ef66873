"""A day's endurance run stored one timeline point a second, 86,400, and the run's API detail and its HTML
report served every one: megabytes of JSON and a chart the browser could hardly draw. They serve at most
TIMELINE_MAX_POINTS now, consecutive seconds merged, and say how many seconds a point covers. The stored
timeline is kept as it was. A synthetic timeline: no real day-long run."""

import re

import pytest

from apps.benchmarks import analysis
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.report import render_run_report
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db
DAY = 86_400


def _point(t: int) -> dict:
    return {"t": t, "users": 50 + t % 7, "rps": 100.0 + t % 3, "errors_per_s": 1.0 if t % 10 == 0 else 0.0,
            "p95_ms": None if t % 5 == 0 else 20.0 + t % 11}  # fmt: skip


@pytest.fixture
def day_run():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    plan = BenchmarkPlan.objects.create(name="soak", service=service, kind="endurance")
    return BenchmarkRun.objects.create(plan=plan, status="succeeded", passed=True, summary={"p95_ms": 30, "rps": 100},
                                       timeline=[_point(t) for t in range(DAY)])  # fmt: skip


def test_the_api_serves_a_bounded_timeline_with_its_step(day_run, admin_client):
    detail = admin_client.get(f"/api/v1/benchmarks/runs/{day_run.pk}/").json()
    timeline, step = detail["timeline"], detail["timeline_step_s"]
    assert 0 < len(timeline) <= analysis.TIMELINE_MAX_POINTS and step > 1
    assert len(timeline) == -(-DAY // step)
    assert [p["t"] for p in timeline] == list(range(0, DAY, step))
    # Totals agree with the stored seconds: req/s and errors/s are averages over each bucket's seconds.
    stored = day_run.timeline
    requests = sum(p["rps"] for p in stored)
    served = sum(p["rps"] * len(stored[i * step : (i + 1) * step]) for i, p in enumerate(timeline))
    assert served == pytest.approx(requests, rel=1e-4)
    errors = sum(p["errors_per_s"] for p in stored)
    served_errors = sum(p["errors_per_s"] * len(stored[i * step : (i + 1) * step]) for i, p in enumerate(timeline))
    assert served_errors == pytest.approx(errors, rel=1e-4)
    assert max(p["users"] for p in timeline) == max(p["users"] for p in stored)
    assert max(p["p95_ms"] for p in timeline) == max(p["p95_ms"] for p in stored if p["p95_ms"] is not None)
    day_run.refresh_from_db()
    assert len(day_run.timeline) == DAY  # stored as it was


def test_the_report_draws_a_bounded_timeline(day_run):
    html = render_run_report(day_run)
    lines = re.findall(r'<polyline points="([^"]*)"', html)
    assert len(lines) >= 2
    assert all(0 < len(points.split()) <= analysis.TIMELINE_MAX_POINTS for points in lines)
    assert "averaged per" in html


def test_a_short_run_is_served_second_by_second(day_run, admin_client):
    BenchmarkRun.objects.filter(pk=day_run.pk).update(timeline=[_point(t) for t in range(600)])
    detail = admin_client.get(f"/api/v1/benchmarks/runs/{day_run.pk}/").json()
    assert detail["timeline_step_s"] == 1 and detail["timeline"] == [_point(t) for t in range(600)]


def test_a_bucket_of_seconds_without_successes_has_no_p95():
    timeline = [{"t": t, "users": t, "rps": 2.0, "errors_per_s": 2.0, "p95_ms": None} for t in range(10)]
    points, step = analysis.timeline_served(timeline, max_points=5)
    assert step == 2 and [p["p95_ms"] for p in points] == [None] * 5
    assert [p["users"] for p in points] == [1, 3, 5, 7, 9] and {p["rps"] for p in points} == {2.0}
