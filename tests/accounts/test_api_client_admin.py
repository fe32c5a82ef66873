"""API clients in admin: who may rotate, revoke, edit and delete them, and with which scopes."""

import pytest
from django.contrib.auth.models import Permission

from apps.accounts.models import ApiClient

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/apiclient/"


@pytest.fixture
def staff_with(django_user_model):
    """A staff user holding exactly the given permissions (codenames of the accounts app)."""

    def make(*codenames: str):
        user = django_user_model.objects.create_user("keys", "keys@example.org", "pw-Long-enough-1", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames))
        return user

    return make


def _change(client, target: ApiClient, scopes: str):
    return client.post(
        f"/admin/accounts/apiclient/{target.pk}/change/",
        {"description": "", "scopes": scopes, "is_active": "on", "expires_at_0": "", "expires_at_1": ""},
    )


def test_a_view_only_user_can_neither_rotate_nor_revoke(client, staff_with, issue_token):
    issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    client.force_login(staff_with("view_apiclient", "scope_patient_read"))
    for action in ("rotate_tokens", "revoke_tokens"):
        response = client.post(CHANGELIST, {"action": action, "_selected_action": [target.pk]}, follow=True)
        assert "New token" not in response.content.decode()
    target.refresh_from_db()
    assert target.rotated_at is None and target.revoked_at is None


def test_rotating_needs_every_scope_of_the_client(client, staff_with, issue_token, api):
    old = issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    client.force_login(staff_with("view_apiclient", "change_apiclient", "scope_inference"))
    response = client.post(CHANGELIST, {"action": "rotate_tokens", "_selected_action": [target.pk]}, follow=True)
    page = response.content.decode()
    assert "New token" not in page and "not rotated; you do not hold patient:read" in page
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 200


def test_a_user_may_add_only_scopes_they_hold(client, staff_with, issue_token):
    issue_token("inference", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    client.force_login(staff_with("view_apiclient", "change_apiclient", "scope_inference", "scope_audit_read"))
    refused = _change(client, target, '["inference", "patient:read"]')
    assert refused.status_code == 200
    assert "only scopes you hold; not patient:read" in refused.content.decode()
    assert _change(client, target, '["inference", "audit:read"]').status_code == 302
    target.refresh_from_db()
    assert target.scopes == ["audit:read", "inference"]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ('["inference", "benchmark"]', "issued only by the benchmark runner"),
        ('"inference"', "A list of scope names"),
        ("5", "A list of scope names"),
        ('["nope"]', "Unknown scope(s): nope"),
    ],
)
def test_bad_scopes_are_a_message_on_the_field_not_a_500(client, admin_user, issue_token, scopes, message):
    issue_token("inference", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    client.force_login(admin_user)
    response = _change(client, target, scopes)
    assert response.status_code == 200
    assert message in response.content.decode()
    target.refresh_from_db()
    assert target.scopes == ["inference"]


def test_a_deleted_client_token_stops_at_once(client, admin_user, issue_token, api):
    token = issue_token("inference", name="leaving")
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200  # now cached
    target = ApiClient.objects.get(name="leaving")
    client.force_login(admin_user)
    response = client.post(f"/admin/accounts/apiclient/{target.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
