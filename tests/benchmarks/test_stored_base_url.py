"""A run of a service whose stored base URL breaks the registry's rules (stored before them, or by raw SQL)
fails at once with the reason: with a query string Locust sent every request to the wrong path and measured
that; a port past 65535 failed as "not in BENCHMARK_TOKEN_HOSTS", naming no cause."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import ApiClient
from apps.benchmarks import services, tasks
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def locust_calls(monkeypatch) -> list:
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs["base_url"])
        raise RuntimeError("Locust was started")

    monkeypatch.setattr(services.runner, "run_locust", refuse)
    return calls


def _plan(base_url: str) -> BenchmarkPlan:
    service = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:8000")
    plan = BenchmarkPlan.objects.create(
        name="triage", service=service, duration_seconds=60,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    Service.objects.filter(pk=service.pk).update(base_url=base_url)  # around the model's checks
    return BenchmarkPlan.objects.select_related("service").get(pk=plan.pk)


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://127.0.0.1:8000/?tenant=icu", "No query string or fragment"),
        ("http://127.0.0.1:8000/#top", "No query string or fragment"),
        ("http://127.0.0.1:0", "A port from 1 to 65535"),
    ],
)
def test_a_queued_run_fails_at_once_naming_the_base_urls_problem(locust_calls, base_url, problem):
    plan = _plan("http://127.0.0.1:8000")
    run = services.benchmark_run_create(plan=plan)  # queued while the URL was usable
    Service.objects.filter(pk=plan.service_id).update(base_url=base_url)
    assert tasks.execute_run.apply(args=[run.pk]).get() == BenchmarkRun.Status.FAILED
    run.refresh_from_db()
    assert run.status == BenchmarkRun.Status.FAILED and run.finished_at is not None
    assert problem in run.error and "base URL" in run.error
    assert locust_calls == []
    assert not ApiClient.objects.filter(name__startswith=f"benchmark-run-{run.pk}-").exists()  # no token issued


def test_a_scheduled_run_is_skipped_with_the_reason_in_the_log(locust_calls, caplog):
    plan = _plan("http://127.0.0.1:99999")
    assert tasks.scheduled_run.apply(args=[plan.pk]).get() is None
    assert not BenchmarkRun.objects.filter(plan=plan).exists()
    assert "A port from 1 to 65535" in caplog.text and "base URL" in caplog.text
    assert locust_calls == []


def test_a_run_of_a_usable_base_url_is_not_failed_by_the_check(locust_calls):
    plan = _plan("http://127.0.0.1:8000")
    run = services.benchmark_run_create(plan=plan)
    tasks.execute_run.apply(args=[run.pk]).get()
    assert locust_calls == ["http://127.0.0.1:8000"]  # it went on to Locust (refused here by the fixture)


def test_a_run_started_directly_fails_naming_the_problem(locust_calls):
    """benchmark_run_execute called without the task (the `bench run` command's path) skipped the task's
    check: the run failed as "not in BENCHMARK_TOKEN_HOSTS", naming no cause."""
    plan = _plan("http://127.0.0.1:8000")
    run = services.benchmark_run_create(plan=plan)
    Service.objects.filter(pk=plan.service_id).update(base_url="http://127.0.0.1:99999")
    run = services.benchmark_run_execute(run_id=run.pk)
    assert run.status == BenchmarkRun.Status.FAILED and "A port from 1 to 65535" in run.error
    assert locust_calls == []


def test_a_plan_of_such_a_service_is_refused_naming_the_problem():
    plan = _plan("http://127.0.0.1:8000/?tenant=icu")
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert "No query string or fragment" in str(refused.value.message_dict["service"])


def test_an_unparsable_stored_url_fails_only_its_own_services_runs(locust_calls):
    """One service stored as "http://[::1" made every run of every service fail: the target check parsed
    every service's URL, and urlsplit raises on that one."""
    other = service_create(name="Broken", slug="broken", base_url="http://127.0.0.1:8001")
    Service.objects.filter(pk=other.pk).update(base_url="http://[::1")
    plan = _plan("http://127.0.0.1:8000")
    run = services.benchmark_run_create(plan=plan)
    tasks.execute_run.apply(args=[run.pk]).get()
    assert locust_calls == ["http://127.0.0.1:8000"]  # it went on to Locust (refused here by the fixture)
