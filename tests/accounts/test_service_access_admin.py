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
