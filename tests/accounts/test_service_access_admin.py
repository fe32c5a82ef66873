"""Who decides which roles see a service: administrators, not the Operators who edit it."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _form(service, **changes) -> dict:
    data = {"name": service.name, "slug": service.slug, "kind": service.kind, "base_url": "", "owner_team": "",
            "description": "", "is_active": "on", "route_prefix": "", "slo_p95_ms": 2000, "slo_p99_ms": 3000,
            "slo_avg_ms": 1000, "slo_min_rps": 50, "slo_error_rate_pct": 5}  # fmt: skip
    return {**data, **changes}


@pytest.fixture
def restricted():
    team = Group.objects.create(name="Oncology AI")
    service, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    service.visible_to.add(team)
    return service, team


def test_an_operator_cannot_change_who_sees_a_service(client, django_user_model, restricted):
    service, team = restricted
    member = django_user_model.objects.create_user("member", "m@example.org", "pw-Long-enough-1", is_staff=True)
    member.groups.set([team, Group.objects.get(name=OPERATORS)])
    client.force_login(member)
    url = f"/admin/services/service/{service.pk}/change/"
    response = client.post(url, _form(service, visible_to=[], owner_team="Oncology"))
    assert response.status_code == 302, response.content.decode()[:1000]
    service.refresh_from_db()
    assert service.owner_team == "Oncology"  # the rest of the edit is kept
    assert list(service.visible_to.all()) == [team]


def test_an_administrator_can(client, django_user_model, restricted):
    service, _team = restricted
    admin = django_user_model.objects.create_user("adm", "a@example.org", "pw-Long-enough-1", is_staff=True)
    admin.groups.set([Group.objects.get(name=ADMINISTRATORS)])
    client.force_login(admin)
    response = client.post(f"/admin/services/service/{service.pk}/change/", _form(service, visible_to=[]))
    assert response.status_code == 302
    assert not service.visible_to.exists()


@pytest.fixture
def outsider_operator(django_user_model):
    user = django_user_model.objects.create_user("outsider", "o@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=OPERATORS)])
    return user


@pytest.mark.parametrize("prefix", ["api/", "api/v1/onco/triage/"])
def test_an_operator_cannot_point_a_service_at_a_hidden_one_s_routes(
    client, api, outsider_operator, restricted, prefix
):
    """Otherwise the series, SLO and live row of their own service would carry the hidden one's traffic."""
    service, _team = restricted
    service.route_prefix = "api/v1/onco/"
    service.save()
    mine, _ = service_ensure(slug="mine", name="Mine")
    client.force_login(outsider_operator)
    page = client.post(f"/admin/services/service/{mine.pk}/change/", _form(mine, route_prefix=prefix))
    assert page.status_code == 200 and "overlaps the routes of a service you do not see" in page.content.decode()
    api.force_login(outsider_operator)
    response = api.patch("/api/v1/services/mine/", {"route_prefix": prefix}, format="json")
    assert response.status_code == 400
    assert "overlaps" in str(response.json()["errors"]["route_prefix"])
    created = api.post("/api/v1/services/", {"name": "New", "slug": "new", "route_prefix": prefix}, format="json")
    assert created.status_code == 400
    mine.refresh_from_db()
    assert mine.route_prefix == ""
    assert api.patch("/api/v1/services/mine/", {"route_prefix": "api/v1/mine/"}, format="json").status_code == 200
