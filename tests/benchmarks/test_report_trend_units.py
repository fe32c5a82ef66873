"""A 60-second load run's report read "p95 slope -540.525 ms per hour": a slope fitted over a minute and
extrapolated to an hour, a change the run never saw. A run shorter than an hour is given the change over its
own length; the hourly slope is kept for runs of an hour or more."""

from html import unescape

import pytest

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _run_report(*, requests: int, rps: float, slope: float) -> str:
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    plan = BenchmarkPlan.objects.create(
        name="trend", service=service, requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}]
    )
    run = services.benchmark_run_create(plan=plan)
    endurance = {"windows": 3, "p95_slope_ms_per_hour": slope, "p_value": 0.2, "significant": False}
    BenchmarkRun.objects.filter(pk=run.pk).update(
        status="succeeded", summary={"requests": requests, "errors": 0, "error_rate_pct": 0.0, "rps": rps},
        findings={"endurance": endurance},
    )  # fmt: skip
    run.refresh_from_db()
    return unescape(services.render_run_report(run))


def test_a_minute_long_run_reports_the_change_over_its_minute_not_an_hourly_slope():
    report = _run_report(requests=600, rps=10.0, slope=-540.525)
    assert "per hour" not in report
    assert "p95 trend -9.009 ms over the run's 60 s (p = 0.2)" in report


def test_a_run_of_an_hour_or_more_reports_its_hourly_slope():
    report = _run_report(requests=72000, rps=10.0, slope=12.5)
    assert "p95 slope 12.5 ms per hour (p = 0.2)" in report
