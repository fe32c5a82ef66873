"""The scaling, benchmark and optimizer changelists have a search box: a service's rows found by its name
(the lists had none, and a year of nightly runs was paged through by hand)."""

import pytest

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.optimizer.models import OptimizationRun
from apps.scaling.models import ScalingPolicy, ScalingRecommendation, WorkloadForecast
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_services():
    wanted, _ = service_ensure(slug="sepsis-triage", name="Sepsis triage")
    other, _ = service_ensure(slug="radiology", name="Radiology")
    return wanted, other


def _found(admin_client, url: str, term: str) -> list:
    response = admin_client.get(url, {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_benchmark_plans_runs_and_regressions_are_found_by_plan_and_service(admin_client, two_services):
    wanted, other = two_services
    for service, name in ((wanted, "sepsis nightly"), (other, "radiology nightly")):
        plan = BenchmarkPlan.objects.create(name=name, service=service, requests=[])
        run = BenchmarkRun.objects.create(plan=plan, requested_by=f"{name} requester")
        Regression.objects.create(plan=plan, run=run, baseline=1, current=2, change_pct=100, p_value=0.01,
                                  threshold_pct=5)  # fmt: skip
    plan_of = {
        "/admin/benchmarks/benchmarkplan/": lambda row: row,
        "/admin/benchmarks/benchmarkrun/": lambda row: row.plan,
        "/admin/benchmarks/regression/": lambda row: row.plan,
    }
    for url, plan in plan_of.items():
        assert [plan(row).name for row in _found(admin_client, url, "Sepsis")] == ["sepsis nightly"], url
        assert [plan(row).name for row in _found(admin_client, url, "radiology")] == ["radiology nightly"], url
    found = _found(admin_client, "/admin/benchmarks/benchmarkrun/", "radiology nightly requester")
    assert [run.requested_by for run in found] == ["radiology nightly requester"]


def test_scaling_rows_are_found_by_service(admin_client, two_services):
    for service in two_services:
        ScalingPolicy.objects.create(service=service)
        forecast = WorkloadForecast.objects.create(service=service, metric="request_rate", source="metrics",
                                                   history_hours=1, model="naive")  # fmt: skip
        ScalingRecommendation.objects.create(service=service, forecast=forecast, peak_replicas=3, min_replicas=2)
    for url in ("/admin/scaling/scalingpolicy/", "/admin/scaling/workloadforecast/",
                "/admin/scaling/scalingrecommendation/"):  # fmt: skip
        assert [row.service.slug for row in _found(admin_client, url, "sepsis-triage")] == ["sepsis-triage"], url
        assert [row.service.slug for row in _found(admin_client, url, "Radiology")] == ["radiology"], url


def test_optimization_runs_are_found_by_service_and_requester(admin_client, two_services):
    wanted, other = two_services
    OptimizationRun.objects.create(target="caching", service=wanted, requested_by="nightly-sepsis")
    OptimizationRun.objects.create(target="caching", service=other, requested_by="nightly-radiology")
    found = _found(admin_client, "/admin/optimizer/optimizationrun/", "Sepsis")
    assert [run.requested_by for run in found] == ["nightly-sepsis"]
    found = _found(admin_client, "/admin/optimizer/optimizationrun/", "nightly-radiology")
    assert [run.requested_by for run in found] == ["nightly-radiology"]
