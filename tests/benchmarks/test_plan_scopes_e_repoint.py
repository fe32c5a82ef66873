"""A run sends its plan's token (the plan's scopes, PHI ones included, and the rate-limit-skipping `benchmark`
scope) to the service's base URL. BENCHMARK_TOKEN_HOSTS names hosts, not ports: an Operator, who holds no
PHI scope, could repoint the service at a listener of their own on another port of an allowed host (or move
the plan to a service they pointed there), run an administrator's plan and capture its token. Only a user
holding the scopes of a service's plans may change its base URL, or move such a plan to another service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS
from apps.benchmarks.models import BenchmarkPlan
from apps.services.models import Service
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db
REQUESTS = [{"name": "card", "method": "GET", "path": "/api/v1/patients/{patient_id}/", "weight": 1}]
LISTENER = "http://127.0.0.1:9509"


@pytest.fixture
def clinical():
    service = service_ensure(slug="clinical-api", name="Clinical API", base_url="http://127.0.0.1:9")[0]
    BenchmarkPlan.objects.create(name="clinical load", service=service, requests=REQUESTS,
                                 scopes=["patient:read", "clinical:read"])  # fmt: skip
    return service


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    return user


def _service_form(service: Service, **changes) -> dict:
    form = {"name": service.name, "slug": service.slug, "kind": service.kind, "base_url": service.base_url,
            "owner_team": service.owner_team, "description": service.description, "is_active": "on",
            "route_prefix": service.route_prefix, "slo_p95_ms": service.slo_p95_ms, "slo_p99_ms": service.slo_p99_ms,
            "slo_avg_ms": service.slo_avg_ms or "", "slo_min_rps": service.slo_min_rps or "",
            "slo_error_rate_pct": service.slo_error_rate_pct}  # fmt: skip
    return {**form, **changes}


def test_an_operator_cannot_repoint_a_service_with_a_phi_plan_through_the_api(clinical, staff_api):
    response = staff_api.patch(f"/api/v1/services/{clinical.slug}/", {"base_url": LISTENER}, format="json")
    assert response.status_code == 400, response.content
    assert "patient:read" in str(response.json()["errors"]["base_url"])
    assert Service.objects.get(pk=clinical.pk).base_url == "http://127.0.0.1:9"


def test_an_operator_cannot_repoint_it_in_admin_and_the_run_keeps_its_target(clinical, client, operator_user):
    client.force_login(operator_user)
    response = client.post(f"/admin/services/service/{clinical.pk}/change/", _service_form(clinical, base_url=LISTENER))
    assert response.status_code == 200  # the form comes back with the field's error
    assert "patient:read" in str(response.context["adminform"].form.errors["base_url"])
    assert Service.objects.get(pk=clinical.pk).base_url == "http://127.0.0.1:9"
    # the operator still edits the service's other fields
    response = client.post(f"/admin/services/service/{clinical.pk}/change/", _service_form(clinical, owner_team="ops"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Service.objects.get(pk=clinical.pk).owner_team == "ops"


def test_a_user_holding_the_scopes_repoints_it_and_a_service_without_plans_is_free(
    clinical, administrator, api, staff_api
):
    api.force_login(administrator)
    response = api.patch(f"/api/v1/services/{clinical.slug}/", {"base_url": "http://127.0.0.1:8000"}, format="json")
    assert response.status_code == 200, response.content
    other = service_ensure(slug="other", name="Other", base_url="http://127.0.0.1:9")[0]
    response = staff_api.patch(f"/api/v1/services/{other.slug}/", {"base_url": LISTENER}, format="json")
    assert response.status_code == 200, response.content


def test_an_operator_cannot_move_a_phi_plan_to_a_service_they_pointed_elsewhere(
    clinical, client, operator_user, administrator
):
    theirs = service_ensure(slug="theirs", name="Theirs", base_url=LISTENER)[0]
    plan = BenchmarkPlan.objects.get()
    form = {"name": plan.name, "service": theirs.pk, "kind": "load", "users": 10, "spawn_rate": 10,
            "duration_seconds": 60, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": '[{"path": "/x", "weight": 1}]', "scopes": '["patient:read", "clinical:read"]'}  # fmt: skip
    client.force_login(operator_user)
    response = client.post(f"/admin/benchmarks/benchmarkplan/{plan.pk}/change/", form)
    assert response.status_code == 200
    assert "patient:read" in str(response.context["adminform"].form.errors["service"])
    assert BenchmarkPlan.objects.get().service_id == clinical.pk
    # the same edit keeping the service is still theirs to make
    response = client.post(f"/admin/benchmarks/benchmarkplan/{plan.pk}/change/", {**form, "service": clinical.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    client.force_login(administrator)
    assert client.post(f"/admin/benchmarks/benchmarkplan/{plan.pk}/change/", form).status_code == 302
    assert BenchmarkPlan.objects.get().service_id == theirs.pk
