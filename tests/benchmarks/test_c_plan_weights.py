"""A plan's weights are shares of its mix, each at most MAX_WEIGHT: 10**400, or two weights of 1e308, passed
the "finite" check, and then every run of the plan failed in Locust (float() overflowed; random.choices
refused a total that is not finite). A plan stored with one around the checks fails its run with the reason,
before Locust starts or a token is issued (review d, finding 1)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from apps.accounts.models import ApiClient
from apps.benchmarks import models, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

HUGE = 10**400  # JSON reads it as a Python int; float(HUGE) raises OverflowError
MAX_WEIGHT = 1_000_000  # models.MAX_WEIGHT (spelled out: the old code had none)


@pytest.fixture
def service():
    return service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]


@pytest.fixture
def locust_calls(monkeypatch) -> list:
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs["requests"])
        raise RuntimeError("Locust was started")

    monkeypatch.setattr(services.runner, "run_locust", refuse)
    return calls


@pytest.mark.parametrize(
    "weights",
    [[HUGE], [1e308, 1e308], [MAX_WEIGHT + 1], [1, MAX_WEIGHT * 1.5], [-HUGE]],
    ids=["10**400", "two-1e308", "cap+1", "second-over-cap", "-10**400"],
)
def test_a_weight_no_run_could_use_is_a_field_error_on_requests(service, weights):
    requests = [{"path": f"/x{i}", "weight": weight} for i, weight in enumerate(weights)]
    plan = BenchmarkPlan(name="plan", service=service, requests=requests)
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    errors = refused.value.message_dict
    assert list(errors) == ["requests"]
    assert f"at most {MAX_WEIGHT:,}" in errors["requests"][0]


def test_weights_up_to_the_cap_are_accepted(service):
    assert models.MAX_WEIGHT == MAX_WEIGHT
    requests = [{"path": "/a", "weight": MAX_WEIGHT}, {"path": "/b", "weight": 0.5}, {"path": "/c"}]
    BenchmarkPlan(name="plan", service=service, requests=requests).full_clean()


def test_admin_answers_a_field_error_for_a_weight_of_10_to_the_400(service, admin_client):
    form = {"name": "weights", "service": service.pk, "kind": "load", "scopes": '["patient:read"]', "users": 10,
            "spawn_rate": 10, "duration_seconds": 60, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": json.dumps([{"path": "/x", "weight": 1}])}  # fmt: skip
    assert admin_client.post("/admin/benchmarks/benchmarkplan/add/", form).status_code == 302
    plan = BenchmarkPlan.objects.get()

    form |= {"requests": json.dumps([{"path": "/x", "weight": HUGE}])}
    response = admin_client.post(f"/admin/benchmarks/benchmarkplan/{plan.pk}/change/", form)
    assert response.status_code == 200
    assert "at most 1,000,000" in response.context["adminform"].form.errors["requests"][0]
    plan.refresh_from_db()
    assert plan.requests == [{"path": "/x", "weight": 1}]


def test_a_stored_plan_with_such_a_weight_starts_no_run_and_says_why(service):
    plan = BenchmarkPlan.objects.create(name="stored", service=service, requests=[{"path": "/x", "weight": 1}])
    BenchmarkPlan.objects.filter(pk=plan.pk).update(requests=[{"path": "/x", "weight": HUGE}])  # around the checks
    plan.refresh_from_db()
    assert plan.requests[0]["weight"] == HUGE
    with pytest.raises(ValidationError) as refused:
        services.benchmark_run_create(plan=plan)
    assert "at most 1,000,000" in refused.value.message_dict["requests"][0]
    assert not BenchmarkRun.objects.exists()


@pytest.mark.parametrize("weights", [[HUGE], [1e308, 1e308]], ids=["10**400", "two-1e308"])
def test_a_queued_run_of_a_plan_changed_since_fails_with_the_reason_before_locust(service, locust_calls, weights):
    plan = BenchmarkPlan.objects.create(name="queued", service=service, requests=[{"path": "/x", "weight": 1}])
    run = services.benchmark_run_create(plan=plan)  # queued while the plan was valid
    requests = [{"path": f"/x{i}", "weight": weight} for i, weight in enumerate(weights)]
    BenchmarkPlan.objects.filter(pk=plan.pk).update(requests=requests)

    run = services.benchmark_run_execute(run_id=run.pk)
    assert run.status == BenchmarkRun.Status.FAILED and run.finished_at is not None
    assert run.error.startswith("PlanInvalid: its request mix is not valid: Request 1: a weight above 0 and at most")
    assert "Fix the plan" in run.error and "Traceback" not in run.error
    assert locust_calls == []
    assert not ApiClient.objects.filter(name__startswith=f"benchmark-run-{run.pk}-").exists()  # no token issued
