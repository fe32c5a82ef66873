"""A changelist action with a selected id that is not an id is a 400 in every admin, never a 500."""

import pytest
from django.contrib import admin

pytestmark = pytest.mark.django_db

MALFORMED = ["abc", "1.5", "1\x00", ""]


def _changelists() -> list[str]:
    return [
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        for model in admin.site._registry
        if model._meta.pk.get_internal_type().endswith("AutoField")
    ]


@pytest.mark.parametrize("value", MALFORMED)
def test_every_admins_delete_action_refuses_a_selected_value_that_is_not_an_id(client, admin_user, value):
    client.force_login(admin_user)
    client.raise_request_exception = False
    failures = {}
    for url in _changelists():
        response = client.post(url, {"action": "delete_selected", "_selected_action": ["1", value], "index": "0"})
        if response.status_code >= 500 or response.status_code not in (400, 403, 302, 200):
            failures[url] = response.status_code
        elif response.status_code == 400:
            assert "_selected_action" in response.content.decode()
    assert failures == {}


def test_a_valid_selection_still_reaches_the_action(client, admin_user):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="Oncology AI")
    client.force_login(admin_user)
    response = client.post(
        "/admin/auth/group/", {"action": "delete_selected", "_selected_action": [str(team.pk)], "index": "0"}
    )
    assert response.status_code == 200 and "Are you sure" in response.content.decode()
