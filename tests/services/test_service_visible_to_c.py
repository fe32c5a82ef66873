"""`visible_to` (who sees a service) is an administrator's choice made in admin. The services API has no such
field, and dropped it unread like any unknown key: a client restricting a service to a group was answered 201/200
and the service stayed open to every staff role. It is refused now, on the field, and nothing is saved."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator_api(api, django_user_model):
    user = django_user_model.objects.create_user("root", "root@example.org", "pw-admin-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    api.force_login(user)
    return api


@pytest.mark.parametrize("value", [["Ward 3"], [1], []])
def test_a_create_with_visible_to_is_a_400_on_the_field(administrator_api, value):
    Group.objects.get_or_create(name="Ward 3")
    body = {"name": "Triage", "slug": "triage", "visible_to": value}
    response = administrator_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["errors"]) == ["visible_to"]
    assert "admin" in str(response.json()["errors"]["visible_to"])
    assert not Service.objects.exists()


def test_an_update_with_visible_to_is_a_400_and_changes_nothing(staff_api):
    service = service_create(name="Triage", slug="triage", owner_team="Ward")
    ward = Group.objects.create(name="Ward 3")
    body = {"visible_to": [ward.pk], "owner_team": "Other"}
    response = staff_api.patch("/api/v1/services/triage/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "visible_to" in response.json()["errors"]
    service.refresh_from_db()
    assert service.owner_team == "Ward" and not service.visible_to.exists()


def test_writes_without_it_work_as_before(staff_api):
    assert staff_api.post("/api/v1/services/", {"name": "Triage", "slug": "triage"}, format="json").status_code == 201
    assert staff_api.patch("/api/v1/services/triage/", {"owner_team": "W"}, format="json").status_code == 200


def test_admin_still_sets_it_for_an_administrator(client, admin_user):
    ward = Group.objects.create(name="Ward 3")
    client.force_login(admin_user)
    form = {"name": "Triage", "slug": "triage", "kind": "api", "is_active": "on", "slo_p95_ms": 2000,
            "slo_p99_ms": 3000, "slo_avg_ms": 1000, "slo_min_rps": 50, "slo_error_rate_pct": 5,
            "visible_to": [ward.pk]}  # fmt: skip
    response = client.post("/admin/services/service/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert list(Service.objects.get().visible_to.all()) == [ward]
