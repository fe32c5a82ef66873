"""A token lives ten years at most, whichever way its expiry is set: the commands capped it, admin did not, and
with the hospital's clock west of UTC an expiry of 9999-12-31 23:59 there was stored past year 10,000 in UTC,
which PostgreSQL keeps and Python cannot read: from then on every read of that client failed (its admin pages,
the changelist, each request bearing its token). Likewise near year 1 east of UTC: 0001-01-01 in Tokyo is a BC
timestamp in UTC, which PostgreSQL keeps and psycopg cannot read."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import MAX_EXPIRES_DAYS, api_client_create, api_client_update

pytestmark = pytest.mark.django_db


def _change(admin_client, target: ApiClient, day: str, time: str = "12:00:00"):
    return admin_client.post(
        f"/admin/accounts/apiclient/{target.pk}/change/",
        {"description": "", "scopes": '["patient:read"]', "is_active": "on", "expires_at_0": day, "expires_at_1": time},
    )


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Honolulu"])
def test_admin_refuses_an_expiry_beyond_ten_years_with_a_message(admin_client, issue_token, settings, api, zone):
    settings.TIME_ZONE = zone
    token = issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    response = _change(admin_client, target, "9999-12-31", "23:59:59")
    assert response.status_code == 200 and "ten years" in response.content.decode()
    assert ApiClient.objects.get(pk=target.pk).expires_at is None
    assert admin_client.get("/admin/accounts/apiclient/").status_code == 200
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    within = (timezone.localdate() + timedelta(days=365)).isoformat()
    assert _change(admin_client, target, within).status_code == 302
    assert ApiClient.objects.get(pk=target.pk).expires_at is not None


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_admin_refuses_an_expiry_more_than_ten_years_ago_with_a_message(admin_client, issue_token, settings, api, zone):
    settings.TIME_ZONE = zone
    token = issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    response = _change(admin_client, target, "0001-01-01", "00:00:00")
    assert response.status_code == 200 and "ten years ago" in response.content.decode()
    assert ApiClient.objects.get(pk=target.pk).expires_at is None
    assert admin_client.get("/admin/accounts/apiclient/").status_code == 200
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()  # a recent past expiry ends the token now
    assert _change(admin_client, target, yesterday).status_code == 302
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").json()["code"] == "token_expired"


def test_the_services_refuse_it_too():
    too_late = timezone.now() + timedelta(days=MAX_EXPIRES_DAYS + 2)
    with pytest.raises(ValidationError) as refused:
        api_client_create(name="ward-app", scopes=["inference"], expires_at=too_late)
    assert "expires_at" in refused.value.message_dict
    client = api_client_create(name="ward-app", scopes=["inference"]).client
    with pytest.raises(ValidationError):
        api_client_update(client=client, expires_at=too_late)
    api_client_update(client=client, expires_at=timezone.now() + timedelta(days=MAX_EXPIRES_DAYS))
    too_early = timezone.now() - timedelta(days=MAX_EXPIRES_DAYS + 2)
    with pytest.raises(ValidationError) as refused:
        api_client_update(client=client, expires_at=too_early)
    assert "expires_at" in refused.value.message_dict


def test_an_edit_that_leaves_a_stored_expiry_alone_is_not_refused_for_it(admin_client, issue_token):
    """A client given a longer expiry before this check (in SQL, or before the upgrade) is still editable."""
    issue_token("patient:read", name="ward-app")
    far = timezone.now().replace(microsecond=0) + timedelta(days=MAX_EXPIRES_DAYS * 2)
    ApiClient.objects.filter(name="ward-app").update(expires_at=far)
    target = ApiClient.objects.get(name="ward-app")
    local = timezone.localtime(far)
    response = admin_client.post(
        f"/admin/accounts/apiclient/{target.pk}/change/",
        {"description": "ward 7", "scopes": '["patient:read"]', "is_active": "on",
         "expires_at_0": local.date().isoformat(), "expires_at_1": local.time().isoformat()},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ApiClient.objects.get(pk=target.pk).description == "ward 7"
