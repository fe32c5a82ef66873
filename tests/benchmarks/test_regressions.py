"""The regression check compares like with like: runs of the same load, successful requests on both sides,
enough samples for a verdict. Runs are recorded from made-up Locust outcomes (no Locust here: what is
tested is what the service makes of the samples)."""

import numpy as np
import pytest
from django.utils import timezone

from apps.benchmarks import runner, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db
rng = np.random.default_rng(7)


@pytest.fixture
def plan():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    return BenchmarkPlan.objects.create(
        name="target load",
        service=service,
        users=3,
        spawn_rate=3,
        duration_seconds=10,
        min_regression_pct=10,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )


def _samples(median_ms: float, count: int = 300, *, failures: int = 0, failure_ms: float = 1.0) -> list[list]:
    """[[seconds since start, latency ms, from intended ms, ok, name]] over 10 s, failures first."""
    latencies = [failure_ms] * failures + [float(ms) for ms in rng.normal(median_ms, median_ms * 0.03, count)]
    return [[10 * i / len(latencies), ms, ms, int(i >= failures), "card"] for i, ms in enumerate(latencies)]


def _recorded(plan: BenchmarkPlan, samples: list[list]) -> BenchmarkRun:
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    run.refresh_from_db()
    outcome = runner.Outcome("succeeded", 10.0, samples)
    return services._record(run, outcome, runner.stages_for(plan), plan.gates())


def test_a_run_slower_than_its_baseline_is_a_regression(plan):
    for _ in range(3):
        _recorded(plan, _samples(10))
    run = _recorded(plan, _samples(13))
    assert run.status == "succeeded" and Regression.objects.filter(run=run).exists(), run.findings


def test_one_slow_request_is_no_regression(plan):
    """A run with one successful request (the rest failed) was a +900% latency regression at p = 0.0002."""
    for _ in range(3):
        _recorded(plan, _samples(10))
    run = _recorded(plan, _samples(100, count=1, failures=299))
    assert not Regression.objects.exists(), run.findings.get("regression_check")


def test_a_run_of_an_edited_plan_is_not_compared_with_the_runs_before_the_edit(plan):
    """Ten times the users is slower by design: it was compared with the old load's runs and flagged."""
    for _ in range(3):
        _recorded(plan, _samples(10))
    plan.users = 30
    plan.save()
    run = _recorded(plan, _samples(30))
    assert not Regression.objects.exists(), run.findings.get("regression_check")
    for _ in range(2):
        _recorded(plan, _samples(30))
    slower = _recorded(plan, _samples(40))  # a baseline of its own load again
    assert Regression.objects.filter(run=slower).exists(), slower.findings.get("regression_check")


def test_a_run_with_other_scopes_is_not_compared_with_the_runs_before(plan):
    """The scopes decide which requests succeed, and only successes are latencies: a scope added made an
    endpoint's fast 403s its real (slower) answers, flagged as a regression of an unchanged service."""
    for _ in range(3):
        _recorded(plan, _samples(10))
    plan.scopes = [*plan.scopes, "clinical:write"]
    plan.save()
    run = _recorded(plan, _samples(30))
    assert not Regression.objects.exists(), run.findings.get("regression_check")
    plan.scopes = list(reversed(plan.scopes))  # the same scopes in another order are the same load
    plan.save()
    for _ in range(2):
        _recorded(plan, _samples(30))
    slower = _recorded(plan, _samples(40))
    assert Regression.objects.filter(run=slower).exists(), slower.findings.get("regression_check")


def test_failed_requests_are_left_out_of_the_baseline_as_of_the_run(plan):
    """The baseline kept every sample, fast failures (401s, 503s) included, while the run kept its
    successes only: a baseline of 60% 1 ms failures made an unchanged 10 ms service a +900% regression."""
    for _ in range(3):
        _recorded(plan, _samples(10, failures=450))
    run = _recorded(plan, _samples(10))
    assert not Regression.objects.exists(), run.findings.get("regression_check")


def test_the_run_report_escapes_names_draws_its_charts_and_quotes_the_samples(plan, admin_client):
    from apps.benchmarks import analysis

    plan.name = '<img src=x onerror="alert(1)">'
    plan.save()
    samples = _samples(10, failures=30)
    run = _recorded(plan, samples)
    BenchmarkRun.objects.filter(pk=run.pk).update(
        timeline=[{"t": t, "users": 3, "rps": 30.0, "errors_per_s": 0.0, "p95_ms": 10.0 + t} for t in range(10)]
    )
    run.refresh_from_db()
    report = services.render_run_report(run)
    assert "<img src=x" not in report and "&lt;img src=x" in report
    assert report.count("<svg") == 3  # req/s and p95 over time, the latency histogram
    exact = analysis.histogram_of([s[1] for s in samples if s[3]]).get_value_at_percentile(95) / 1000
    assert run.summary["requests"] == len(samples) and run.summary["errors"] == 30
    assert run.summary["p95_ms"] == pytest.approx(exact) and f"p95 {run.summary['p95_ms']}," in report
    assert run.summary["rps"] == pytest.approx(len(samples) / (samples[-1][0] + samples[-1][1] / 1000), abs=0.001)
    page = admin_client.get(f"/benchmarks/runs/{run.pk}/report/").content.decode()
    assert "<img src=x" not in page


def test_a_cancelled_run_keeps_its_cancellation_on_record(plan):
    """The run's final save wrote back the whole row as its worker had read it at the start: the admin's
    cancel_requested went back to False on the cancelled run."""
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    run.refresh_from_db()
    services.benchmark_run_cancel(run=BenchmarkRun.objects.get(pk=run.pk))  # from admin, while it runs
    services._record(run, runner.Outcome("cancelled", 3.0, _samples(10)), runner.stages_for(plan), plan.gates())
    run.refresh_from_db()
    assert run.status == "cancelled" and run.cancel_requested


def test_the_analyses_of_a_long_run_take_seconds():
    """Each window (of the endurance trend, a stress step, a second after a spike) scanned every sample:
    an hour at 100 req/s took over a minute here, a day's endurance run hours, past the heartbeat the
    checker waits for."""
    import time

    from apps.benchmarks import analysis

    times = np.sort(rng.uniform(0, 3600, 360_000))
    samples = [
        [float(t), float(ms), float(ms), 1, "card"] for t, ms in zip(times, rng.gamma(4, 3, len(times)), strict=True)
    ]
    stages = [[20 * (step + 1), 10 + step, 10] for step in range(180)]
    started = time.monotonic()
    summary = analysis.summarize(samples)
    trend = analysis.endurance_slope(samples)
    knee = analysis.stress_knee(samples, stages, {"p95_ms": 100.0, "error_rate_pct": 1.0})
    spike = analysis.spike_recovery(samples, [[1200, 10, 10], [2400, 40, 40], [3600, 10, 40]])
    assert time.monotonic() - started < 20
    assert summary["requests"] == 360_000 and trend["windows"] == 120 and len(knee["steps"]) == 180
    assert spike["recovery_seconds"] == 0  # the made-up latencies never rose
    exact = np.percentile([s[1] for s in samples], 95)
    assert summary["p95_ms"] == pytest.approx(exact, rel=0.002)  # HDR at 3 significant digits


def test_a_shift_at_the_run_just_recorded_is_a_change_point(plan):
    """PELT's segments were at least two runs long, so the run just recorded, the history's last point,
    could never start one: a threefold p95 was a regression "without a change point" every time."""
    for _ in range(4):
        _recorded(plan, _samples(10))
    run = _recorded(plan, _samples(30))
    regression = Regression.objects.get(run=run)
    assert regression.change_point and run.findings["regression_check"]["change_point"]


def test_a_flat_p95_history_has_no_change_point_at_a_wobble():
    """Equal p95s have no spread: with the noise taken as zero every wobble was a change."""
    from apps.benchmarks import analysis

    assert analysis.change_points([10.0] * 5 + [10.1]) == []
    assert analysis.change_points([10.0] * 5 + [12.0]) == [5]


def test_a_run_with_a_flat_latency_trend_is_recorded(plan):
    """A target answering in a fixed time gave every 30 s window the same p95: linregress's p-value was
    NaN, PostgreSQL's json refused it, and the run stayed running until the checker failed it as if its
    worker had died, its results lost."""
    samples = [[i / 10, 10.0, 10.0, 1, "card"] for i in range(1000)]  # 100 s at 10 req/s, 10 ms each
    run = _recorded(plan, samples)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.findings["endurance"] == {
        "windows": 4, "p95_slope_ms_per_hour": 0.0, "p_value": 1.0, "significant": False
    }  # fmt: skip


def test_a_run_that_sent_no_requests_failed(plan):
    """Locust that never got its users going finished 'succeeded' with 0 requests: a run that measured
    nothing stood in the plan's history beside real ones."""
    run = _recorded(plan, [])
    assert run.status == "failed" and "sent no requests" in run.error
    assert run.summary == {"requests": 0, "errors": 0, "error_rate_pct": 0.0, "rps": 0.0}
    assert "0 requests" in run.report_html


def test_reports_give_times_on_the_hospitals_clock_and_name_its_zone(plan, settings):
    """The run report wrote the start on the hospital's clock (TIME_ZONE) followed by "UTC": 07:00 in New
    York read as 07:00 UTC, five hours off."""
    from datetime import UTC, datetime

    from apps.benchmarks.report import render_plan_report

    settings.TIME_ZONE = "America/New_York"
    run = _recorded(plan, _samples(10))
    noon_utc = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    BenchmarkRun.objects.filter(pk=run.pk).update(started_at=noon_utc, created_at=noon_utc)
    run.refresh_from_db()
    report = services.render_run_report(run)
    assert "2026-01-15 07:00:00 EST" in report and "07:00:00 UTC" not in report
    assert "2026-01-15 07:00 EST" in render_plan_report(plan)
