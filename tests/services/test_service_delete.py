"""Deleting a service deleted everything recorded against it (its alert rules and every alert they raised,
its benchmark plans and runs, its forecasts): one DELETE through the API, no question asked. A service with
such rows is refused (400 in the API, protected in admin) and is deactivated instead; one with none is
deleted as before."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS
from apps.metrics.models import Alert, AlertRule
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator_api(api, django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    api.force_login(user)
    return api


def _service_that_paged_someone() -> Service:
    service = service_create(name="Sepsis model", slug="sepsis", kind="inference", route_prefix="api/v1/sepsis/")
    rule = AlertRule.objects.create(name="Sepsis p95", metric="p95_ms", threshold=800, service=service)
    Alert.objects.create(rule=rule, value=1900, last_value=1900, message="p95 1900 ms over 800 ms")
    return service


def test_the_api_refuses_to_delete_a_service_with_alerts_and_says_to_deactivate_it(administrator_api):
    _service_that_paged_someone()
    response = administrator_api.delete("/api/v1/services/sepsis/")
    assert response.status_code == 400
    [message] = response.json()["errors"]["non_field_errors"]
    assert "(alert rules: 1)" in message and "deactivate" in message  # its alerts would be kept, rule-less
    assert Alert.objects.filter(rule__service__slug="sepsis").count() == 1
    deactivated = administrator_api.patch("/api/v1/services/sepsis/", {"is_active": False}, format="json")
    assert deactivated.status_code == 200 and Alert.objects.count() == 1


def test_a_service_with_nothing_recorded_is_deleted(administrator_api):
    service_create(name="Draft", slug="draft").visible_to.add(Group.objects.create(name="Oncology AI"))
    assert administrator_api.delete("/api/v1/services/draft/").status_code == 204
    assert not Service.objects.filter(slug="draft").exists()


def test_admin_shows_such_a_service_as_protected_on_its_page_and_in_delete_selected(admin_client):
    service = _service_that_paged_someone()
    page = admin_client.post(f"/admin/services/service/{service.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "deactivate it" in page.content.decode()
    action = {"action": "delete_selected", "_selected_action": [service.pk], "post": "yes"}
    listed = admin_client.post("/admin/services/service/", action)
    assert listed.status_code == 200 and "deactivate it" in listed.content.decode()
    assert Service.objects.filter(pk=service.pk).exists() and Alert.objects.count() == 1
