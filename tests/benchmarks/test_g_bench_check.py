"""`manage.py bench check` judges each plan's latest finished run, never one still queued or running; a plan
with no finished run is exit status 4 (not a pass, not a missed gate); a regression someone acknowledged
fails nothing."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return service_ensure(slug="check-target", name="Check target", base_url="http://127.0.0.1:9")[0]


def _plan(service, name: str, **fields) -> BenchmarkPlan:
    return BenchmarkPlan.objects.create(name=name, service=service, requests=[], **fields)


def _finished(plan, *, passed: bool, minutes_ago: float, status: str = "succeeded") -> BenchmarkRun:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    run = BenchmarkRun.objects.create(plan=plan, status=status, passed=passed, finished_at=at, summary={})
    BenchmarkRun.objects.filter(pk=run.pk).update(created_at=at - timedelta(minutes=1))
    return run


def _check(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("bench", "check", *args, stdout=out, stderr=StringIO())
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    except CommandError as error:
        return error.returncode, out.getvalue() + str(error)
    return 0, out.getvalue()


def test_a_run_under_way_is_not_judged_the_finished_one_before_it_is(service):
    plan = _plan(service, "nightly")
    passed = _finished(plan, passed=True, minutes_ago=60)
    BenchmarkRun.objects.create(plan=plan, status="running")
    BenchmarkRun.objects.create(plan=plan, status="pending")
    code, output = _check("nightly")
    assert code == 0 and f"Run #{passed.pk} succeeded" in output


def test_the_run_that_finished_last_is_judged(service):
    plan = _plan(service, "nightly")
    _finished(plan, passed=True, minutes_ago=120)
    failed = _finished(plan, passed=False, minutes_ago=5, status="failed")
    code, output = _check("nightly")
    assert code == 1 and f"Run #{failed.pk} failed" in output


def test_a_plan_with_no_finished_run_exits_4(service):
    plan = _plan(service, "never run")
    BenchmarkRun.objects.create(plan=plan, status="running")
    code, output = _check("never run")
    assert code == 4 and "never run has no finished run" in output


def test_without_a_plan_every_enabled_plan_is_judged(service):
    _finished(_plan(service, "a"), passed=True, minutes_ago=5)
    _finished(_plan(service, "b"), passed=True, minutes_ago=5)
    _plan(service, "c, disabled", enabled=False)
    assert _check()[0] == 0
    _plan(service, "d, not run yet")
    assert _check()[0] == 4
    _finished(_plan(service, "e"), passed=False, minutes_ago=5)
    assert _check()[0] == 1  # a missed gate outweighs a plan not yet run


def test_an_acknowledged_regression_fails_nothing(service, admin_user):
    plan = _plan(service, "nightly")
    run = _finished(plan, passed=True, minutes_ago=5)
    regression = Regression.objects.create(plan=plan, run=run, baseline=10, current=15, change_pct=50,
                                           p_value=0.001, threshold_pct=10)  # fmt: skip
    assert _check("nightly", "--fail-on-regression")[0] == 1
    Regression.objects.filter(pk=regression.pk).update(acknowledged_by=admin_user, acknowledged_at=timezone.now())
    code, output = _check("nightly", "--fail-on-regression")
    assert code == 0 and "acknowledged" in output
