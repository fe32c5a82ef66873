"""Deleting a service set its model deployments', rate limit policies' and optimization runs' link to empty,
silently (the refusal counted only rows deleted with it): a restricted service's deployment was then shown
to every staff role (a deployment of no service is everyone's), its policy kept a p95 threshold watching no
service (it never fired), and its runs read as runs over every service, shown to all. Such a service is
refused as one with rows of its own is: a 400 naming them in the API, protected in admin."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from apps.inference.models import ModelDeployment
from apps.optimizer.models import OptimizationRun
from apps.ratelimits.models import RateLimitPolicy
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator_api(api, django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    api.force_login(user)
    return api


@pytest.fixture
def outsider(django_user_model):
    """An Operator outside the Oncology group: never sees its service or anything of it."""
    user = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=OPERATORS)])
    return user


def _oncology_service() -> Service:
    service = service_create(name="Oncology LLM", slug="onco-llm", kind="inference")
    service.visible_to.add(Group.objects.create(name="Oncology"))
    return service


def _deployment(service: Service) -> ModelDeployment:
    return ModelDeployment.objects.create(
        name="onco-assistant", service=service, source=ModelDeployment.Source.SMOLLM2, task="generation"
    )


def _policy(service: Service) -> RateLimitPolicy:
    return RateLimitPolicy.objects.create(
        scope="onco-generate", requests=100, priority=2, adaptive=True, service=service, p95_threshold_ms=800
    )


def _run(service: Service) -> OptimizationRun:
    return OptimizationRun.objects.create(target="all", service=service, status="succeeded")


def test_the_api_refuses_to_delete_a_service_with_a_deployment_and_a_rate_limit_policy(administrator_api):
    service = _oncology_service()
    deployment, policy = _deployment(service), _policy(service)

    response = administrator_api.delete("/api/v1/services/onco-llm/")

    assert response.status_code == 400
    [message] = response.json()["errors"]["non_field_errors"]
    assert "model deployments: 1" in message and "rate limit policies: 1" in message and "deactivate" in message
    deployment.refresh_from_db()
    policy.refresh_from_db()
    assert deployment.service_id == service.pk and policy.service_id == service.pk
    policy.full_clean()  # still a valid policy: its threshold watches the service


def test_the_api_refuses_while_an_optimization_run_of_it_is_kept(administrator_api):
    """A run of no service is shown to every role: the hidden service's figures would be opened to them."""
    service = _oncology_service()
    run = _run(service)

    response = administrator_api.delete("/api/v1/services/onco-llm/")

    assert response.status_code == 400
    assert "optimization runs: 1" in response.json()["errors"]["non_field_errors"][0]
    run.refresh_from_db()
    assert run.service_id == service.pk


@pytest.mark.parametrize("make_row", [_deployment, _policy, _run], ids=["deployment", "policy", "run"])
def test_admin_shows_it_as_protected_and_the_outsider_still_sees_nothing(admin_client, client, outsider, make_row):
    service = _oncology_service()
    row = make_row(service)

    page = admin_client.post(f"/admin/services/service/{service.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "would be left without a service" in page.content.decode()
    action = {"action": "delete_selected", "_selected_action": [service.pk], "post": "yes"}
    listed = admin_client.post("/admin/services/service/", action)
    assert listed.status_code == 200 and "would be left without a service" in listed.content.decode()

    assert Service.objects.filter(pk=service.pk).exists()
    row.refresh_from_db()
    assert row.service_id == service.pk
    if isinstance(row, ModelDeployment):  # the reviewer's reproduction: the outsider's deployment list
        client.force_login(outsider)
        deployments = client.get("/admin/inference/modeldeployment/")
        assert deployments.status_code == 200 and "onco-assistant" not in deployments.content.decode()


def test_once_they_are_moved_or_deleted_the_service_is_deleted(administrator_api):
    service = _oncology_service()
    deployment, policy, run = _deployment(service), _policy(service), _run(service)
    other = service_create(name="Oncology LLM 2", slug="onco-llm-2", kind="inference")
    ModelDeployment.objects.filter(pk=deployment.pk).update(service=other)
    policy.delete()
    run.delete()

    assert administrator_api.delete("/api/v1/services/onco-llm/").status_code == 204
    assert not Service.objects.filter(pk=service.pk).exists()
