"""A token rotated in admin is shown once, on a page no cache keeps, and never travels in a cookie (as a
message it went into Django's `messages` cookie, readable in the browser and sent back on the next request)."""

import pytest

from apps.accounts.models import ApiClient

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/apiclient/"


def test_the_new_token_is_on_an_uncached_page_and_in_no_cookie(admin_client, issue_token, api):
    old = issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    response = admin_client.post(CHANGELIST, {"action": "rotate_tokens", "_selected_action": [target.pk]})
    assert response.status_code == 200
    page = response.content.decode()
    target.refresh_from_db()
    token = page.split("<code>")[1].split("</code>")[0]
    assert token.startswith(target.token_prefix)
    assert "no-store" in response["Cache-Control"]
    assert all(token not in morsel.value for morsel in response.cookies.values())
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 401
    # The next page shows nothing of it.
    assert token not in admin_client.get(CHANGELIST).content.decode()
