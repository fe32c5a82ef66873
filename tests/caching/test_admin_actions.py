"""Changelist actions that change something are for those who may change the rows: a Viewer reads the cache
policies and cannot empty a namespace."""

import pytest

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.caching.models import CachePolicy
from tests.helpers import offered_actions, staff_user

pytestmark = pytest.mark.django_db


def test_a_viewer_cannot_clear_a_namespace(client, django_user_model):
    client.force_login(staff_user(django_user_model, VIEWERS))
    policy = CachePolicy.objects.get(namespace="patient_data")
    assert "clear_namespaces" not in offered_actions(client, "/admin/caching/cachepolicy/")
    response = client.post(
        "/admin/caching/cachepolicy/", {"action": "clear_namespaces", "_selected_action": [policy.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Cleared" not in response.content.decode()
    assert CachePolicy.objects.get(pk=policy.pk).generation == policy.generation


def test_an_operator_can(client, django_user_model):
    client.force_login(staff_user(django_user_model, OPERATORS))
    policy = CachePolicy.objects.get(namespace="patient_data")
    assert "clear_namespaces" in offered_actions(client, "/admin/caching/cachepolicy/")
    response = client.post(
        "/admin/caching/cachepolicy/", {"action": "clear_namespaces", "_selected_action": [policy.pk]}, follow=True
    )
    assert "Cleared 1 namespace(s)." in response.content.decode()
    assert CachePolicy.objects.get(pk=policy.pk).generation > policy.generation


@pytest.mark.parametrize("selected", [["abc"], ["1", "x"], ["1.5"], [""]])
@pytest.mark.parametrize("with_index", [True, False])  # the action chosen in the top bar, or the bottom one
def test_a_selected_id_that_is_not_a_number_is_a_400_not_a_500(client, django_user_model, selected, with_index):
    """A crafted or stale changelist form: the action's queryset filter raised ValueError (a 500)."""
    client.force_login(staff_user(django_user_model, OPERATORS))
    policy = CachePolicy.objects.get(namespace="patient_data")
    client.raise_request_exception = False
    form = {"action": "clear_namespaces", "_selected_action": selected} | ({"index": 0} if with_index else {})
    response = client.post("/admin/caching/cachepolicy/", form)
    assert response.status_code == 400
    assert "_selected_action" in response.content.decode()
    assert CachePolicy.objects.get(pk=policy.pk).generation == policy.generation
