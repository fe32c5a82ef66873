"""Bearer tokens: missing, wrong, revoked, expired and wrong-scope requests get a JSON 401/403."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_revoke, api_client_rotate

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.scoped_urls")]


def _bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_valid_token_with_scope_is_served(api, issue_token):
    response = api.get("/scoped/", **_bearer(issue_token("patient:read")))
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_missing_token_is_401_with_bearer_challenge(api):
    response = api.get("/scoped/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer cpk_nope_nope", "Bearer", "Bearer a b"])
def test_wrong_or_malformed_token_is_401(api, issue_token, header):
    issue_token("patient:read")
    response = api.get("/scoped/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] in {"invalid_token", "malformed_token"}


@pytest.mark.parametrize(
    "query",
    [
        "access_token={token}",
        "token={token}",
        "limit=5&key={token}",
        # A header copied into the query string, and a token percent-encoded: both were ignored, never refused.
        "Authorization=Bearer+{token}",
        "auth=Bearer%20{token}",
        "key={encoded}",
        "{token}",
    ],
)
def test_a_token_in_the_url_is_refused_with_its_own_code_and_not_logged(api, issue_token, caplog, query):
    token = issue_token("patient:read")
    caplog.set_level("DEBUG")
    response = api.get("/scoped/?" + query.format(token=token, encoded=token.replace("_", "%5F")))
    assert response.status_code == 401
    assert response.json()["code"] == "token_in_url" and "rotate it" in response.json()["detail"]
    assert not any(token in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("header", ["Bearer {other}", "Bearer {token}", "Basic Zm9vOmJhcg=="])
def test_a_token_in_the_url_is_refused_whatever_header_comes_with_it(api, issue_token, header):
    """With an Authorization header beside it the token in the URL was ignored and the request served: the
    client never learnt that its token had gone into logs, proxies and history, and never rotated it."""
    token, other = issue_token("patient:read"), issue_token("patient:read")
    response = api.get(f"/scoped/?key={token}", HTTP_AUTHORIZATION=header.format(token=token, other=other))
    assert response.status_code == 401
    assert response.json()["code"] == "token_in_url"


def test_a_query_value_merely_containing_the_prefix_is_not_taken_for_a_token(api, staff_user):
    api.force_login(staff_user)  # a session caller: no Authorization header
    assert api.get("/scoped/?_search=xcpk_12345678_abc").json()["code"] == "insufficient_scope"


def test_revoked_token_is_401(api, issue_token):
    token = issue_token("patient:read", name="revoked")
    api_client_revoke(client=ApiClient.objects.get(name="revoked"))
    response = api.get("/scoped/", **_bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has been revoked.", "code": "token_revoked"}


def test_expired_token_is_401(api, issue_token):
    token = issue_token("patient:read", expires_at=timezone.now() - timedelta(seconds=1))
    response = api.get("/scoped/", **_bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_token_without_the_scope_is_403(api, issue_token):
    response = api.get("/scoped/", **_bearer(issue_token("audit:read")))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "insufficient_scope"
    assert "patient:read" in body["detail"]


def test_a_method_without_its_own_scopes_needs_every_scope_the_view_names(api, issue_token):
    reader = issue_token("patient:read")
    assert api.get("/scoped-per-method/", **_bearer(reader)).status_code == 200
    refused = api.delete("/scoped-per-method/", **_bearer(reader))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "This endpoint requires the scope(s): patient:read, patient:write."
    assert api.delete("/scoped-per-method/", **_bearer(issue_token("patient:read", "patient:write"))).status_code == 200


def test_a_view_naming_no_scope_is_closed_to_every_token_and_staff_user(api, issue_token, admin_user):
    every_scope = issue_token("patient:read", "patient:write", "clinical:read", "clinical:write", "audit:read")
    response = api.get("/no-scope-named/", **_bearer(every_scope))
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    api.force_login(admin_user)
    assert api.get("/no-scope-named/").status_code == 403


def test_scopes_stored_as_a_string_grant_nothing(api, issue_token):
    """A script writing scopes as text must not make each scope's name a substring match."""
    from apps.accounts.services import api_clients_cache

    token = issue_token("inference", name="scripted")
    ApiClient.objects.filter(name="scripted").update(scopes="inference,audit:read")
    api_clients_cache.forget()  # as a change through the services would
    assert api.get("/api/v1/audit/", **_bearer(token)).status_code == 403


def test_rotation_invalidates_the_old_token(api, issue_token):
    old = issue_token("patient:read", name="rotating")
    new = api_client_rotate(client=ApiClient.objects.get(name="rotating")).token
    assert api.get("/scoped/", **_bearer(old)).status_code == 401
    assert api.get("/scoped/", **_bearer(new)).status_code == 200


def test_staff_reach_a_scoped_endpoint_only_with_the_scope_permission(api, staff_user):
    api.force_login(staff_user)
    assert api.get("/scoped/").status_code == 403
    staff_user.user_permissions.add(Permission.objects.get(codename="scope_patient_read"))
    api.force_login(type(staff_user).objects.get(pk=staff_user.pk))
    assert api.get("/scoped/").status_code == 200


def test_whoami_names_the_client_and_its_scopes(api, issue_token):
    token = issue_token("patient:read", "inference", name="ward-app")
    body = api.get("/api/v1/whoami/", **_bearer(token)).json()
    assert body == {"kind": "client", "name": "ward-app", "scopes": ["inference", "patient:read"], "expires_at": None}


def test_admin_edits_go_through_the_service_and_can_clear_an_expiry(client, admin_user, issue_token):
    from datetime import timedelta

    issue_token("patient:read", name="editable", expires_at=timezone.now() + timedelta(days=3))
    target = ApiClient.objects.get(name="editable")
    client.force_login(admin_user)
    response = client.post(
        f"/admin/accounts/apiclient/{target.pk}/change/",
        {"name": "editable", "description": "", "scopes": '["patient:read", "audit:read"]', "is_active": "on",
         "expires_at_0": "", "expires_at_1": ""},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:1500]
    target.refresh_from_db()
    assert target.expires_at is None
    assert target.scopes == ["audit:read", "patient:read"]


def test_whoami_reports_no_scope_for_scopes_stored_as_a_string(api, issue_token):
    """Scopes written as text by a script grant nothing (above), but whoami listed each of its characters."""
    from apps.accounts.services import api_clients_cache

    token = issue_token("inference", name="scripted")
    ApiClient.objects.filter(name="scripted").update(scopes="inference,audit:read")
    api_clients_cache.forget()
    assert api.get("/api/v1/whoami/", **_bearer(token)).json()["scopes"] == []
