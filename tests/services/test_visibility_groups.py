"""Deleting the last group a service was restricted to (a team renamed or disbanded) left its `visible_to`
empty, which means every staff role: the service, its traffic, benchmarks and alerts opened to all of them.
It stays restricted, to the administrators (real PostgreSQL, Django's admin)."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from apps.services.selectors import visible_service_ids
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


def test_deleting_the_group_a_service_was_restricted_to_keeps_it_hidden(admin_client, django_user_model):
    oncology, radiology = Group.objects.create(name="Oncology AI"), Group.objects.create(name="Radiology AI")
    onco = service_create(name="Oncology triage", slug="onco")
    onco.visible_to.add(oncology)
    shared = service_create(name="Shared imaging", slug="shared")
    shared.visible_to.add(oncology, radiology)
    outsider = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    outsider.groups.set([Group.objects.get(name=OPERATORS)])
    assert onco.pk not in visible_service_ids(outsider)

    response = admin_client.post(f"/admin/auth/group/{oncology.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Group.objects.filter(name="Oncology AI").exists()

    assert onco.pk not in visible_service_ids(outsider) and shared.pk not in visible_service_ids(outsider)
    assert list(onco.visible_to.values_list("name", flat=True)) == [ADMINISTRATORS]
    assert list(shared.visible_to.values_list("name", flat=True)) == ["Radiology AI"]  # still restricted: as it was


def test_deleting_all_of_a_services_groups_at_once_keeps_it_hidden(admin_client, django_user_model):
    """Each group's check ran before any was deleted and saw the other still there: 'Delete selected' of both
    left `visible_to` empty, the service open to every staff role (a reviewer's reproduction)."""
    oncology, radiology = Group.objects.create(name="Oncology AI"), Group.objects.create(name="Radiology AI")
    shared = service_create(name="Shared imaging", slug="shared")
    shared.visible_to.add(oncology, radiology)
    outsider = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    outsider.groups.set([Group.objects.get(name=OPERATORS)])
    response = admin_client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [oncology.pk, radiology.pk], "post": "yes"},
    )
    assert response.status_code == 302 and not Group.objects.filter(pk__in=[oncology.pk, radiology.pk]).exists()
    assert shared.pk not in visible_service_ids(outsider)
    assert list(shared.visible_to.values_list("name", flat=True)) == [ADMINISTRATORS]
