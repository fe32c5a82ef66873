"""An edit of a service racing another edit of it: each writes only its own fields, and the whole row is
validated as stored. The other edit is made at the exact point where a real one could land (after the caller
loaded the service, before the service layer saves it), so the race is deterministic."""

import pytest

from apps.services import admin as service_admin
from apps.services.api import views as service_views
from apps.services.models import Service
from apps.services.services import service_create
from apps.services.services import service_update as real_update

pytestmark = pytest.mark.django_db


def _meanwhile(monkeypatch, module, **stored):
    def update_after_another_edit(*, service, **kwargs):
        Service.objects.filter(pk=service.pk).update(**stored)  # the other edit, committed meanwhile
        return real_update(service=service, **kwargs)

    monkeypatch.setattr(module, "service_update", update_after_another_edit)


def test_an_api_edit_keeps_a_field_another_edit_changed_meanwhile(staff_api, monkeypatch):
    service_create(name="Triage", slug="triage", owner_team="ICU")
    _meanwhile(monkeypatch, service_views, owner_team="Radiology")
    response = staff_api.patch("/api/v1/services/triage/", {"slo_p95_ms": 1500}, format="json")
    assert response.status_code == 200, response.content
    stored = Service.objects.get(slug="triage")
    assert (stored.slo_p95_ms, stored.owner_team) == (1500, "Radiology")
    assert response.json()["owner_team"] == "Radiology"


def test_an_api_edit_is_validated_against_the_targets_stored_now(staff_api, monkeypatch):
    service_create(name="Triage", slug="triage")  # p95 2000, p99 3000
    _meanwhile(monkeypatch, service_views, slo_p99_ms=2100)
    response = staff_api.patch("/api/v1/services/triage/", {"slo_p95_ms": 2500}, format="json")
    assert response.status_code == 400 and "slo_p95_ms" in response.json()["errors"]
    stored = Service.objects.get(slug="triage")
    assert (stored.slo_p95_ms, stored.slo_p99_ms) == (2000, 2100)


def test_an_admin_form_writes_only_what_it_changed(client, admin_user, monkeypatch):
    service = service_create(name="Triage", slug="triage", owner_team="ICU")
    client.force_login(admin_user)
    data = {
        "name": "Triage",
        "slug": "triage",
        "kind": service.kind,
        "base_url": "",
        "owner_team": "Emergency",
        "description": "",
        "is_active": "on",
        "route_prefix": "",
        "slo_p95_ms": 2000,
        "slo_p99_ms": 3000,
        "slo_avg_ms": 1000,
        "slo_min_rps": 50,
        "slo_error_rate_pct": 5,
    }
    _meanwhile(monkeypatch, service_admin, slo_min_rps=80)
    response = client.post(f"/admin/services/service/{service.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Service.objects.get(pk=service.pk)
    assert (stored.owner_team, stored.slo_min_rps) == ("Emergency", 80)
