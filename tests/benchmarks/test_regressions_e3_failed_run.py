"""The regression check wrote its Regression before the run's end: a run the checker failed meanwhile (its
heartbeat stale while it recorded a day's samples), whose success was then dropped, kept a regression of a
failed run, listed among the plan's regressions. A regression is kept only with the run's success."""

import pytest
from django.utils import timezone

from apps.benchmarks import runner, services
from apps.benchmarks.models import BenchmarkRun, Regression
from tests.benchmarks.test_regressions import _recorded, _samples, plan  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def test_a_run_failed_while_it_recorded_keeps_no_regression(plan, monkeypatch):  # noqa: F811
    for _ in range(3):
        _recorded(plan, _samples(10))
    detect = services.regressions_detect

    def detect_then_checker_fails(*, run, samples):
        found = detect(run=run, samples=samples)
        assert found is not None, run.findings.get("regression_check")
        BenchmarkRun.objects.filter(pk=run.pk).update(status="failed", finished_at=timezone.now(), error="silent")
        return found

    monkeypatch.setattr(services, "regressions_detect", detect_then_checker_fails)
    run = _recorded(plan, _samples(13))
    assert run.status == "failed"
    assert not Regression.objects.filter(run=run).exists()


def test_a_run_whose_report_failed_keeps_no_regression(plan, monkeypatch):  # noqa: F811
    for _ in range(3):
        _recorded(plan, _samples(10))

    def broken(run):
        raise RuntimeError("template")

    monkeypatch.setattr(services, "render_run_report", broken)
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    run.refresh_from_db()
    with pytest.raises(RuntimeError):
        services._record(run, runner.Outcome("succeeded", 10.0, _samples(13)), runner.stages_for(plan), plan.gates())
    assert not Regression.objects.filter(run=run).exists()


def test_a_successful_slower_run_still_has_its_regression(plan):  # noqa: F811
    for _ in range(3):
        _recorded(plan, _samples(10))
    run = _recorded(plan, _samples(13))
    assert run.status == "succeeded" and Regression.objects.filter(run=run).exists()
