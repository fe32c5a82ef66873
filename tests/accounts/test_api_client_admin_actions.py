"""Admin's Rotate and Revoke actions: no new token for a client whose token could not be used (as the
command), and each one in the client's history, with who did it and never the token."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_revoke

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/apiclient/"


def _rotate(admin_client, *clients: ApiClient):
    return admin_client.post(
        CHANGELIST, {"action": "rotate_tokens", "_selected_action": [c.pk for c in clients]}, follow=True
    )


def test_no_new_token_is_shown_for_a_revoked_or_expired_client(admin_client, issue_token):
    issue_token("patient:read", name="gone")
    issue_token("patient:read", name="lapsed", expires_at=timezone.now() - timedelta(minutes=1))
    api_client_revoke(client=ApiClient.objects.get(name="gone"))
    gone, lapsed = ApiClient.objects.get(name="gone"), ApiClient.objects.get(name="lapsed")
    page = _rotate(admin_client, gone, lapsed).content.decode()
    assert "<code>cpk_" not in page and "New token" not in page
    assert "Gone: not rotated; it is revoked" in page  # capitalised by admin
    assert "Lapsed: not rotated; it expired" in page
    for before in (gone, lapsed):
        after = ApiClient.objects.get(pk=before.pk)
        assert after.token_hash == before.token_hash and after.rotated_at is None


def test_a_usable_client_beside_them_is_still_rotated(admin_client, issue_token):
    issue_token("patient:read", name="gone")
    api_client_revoke(client=ApiClient.objects.get(name="gone"))
    issue_token("patient:read", name="ward-app")
    response = _rotate(admin_client, *ApiClient.objects.filter(name__in=["gone", "ward-app"]))
    page = response.content.decode()
    assert page.count("<code>cpk_") == 1 and "ward-app" in page.split("<code>")[0].rsplit("<tr>", 1)[1]
    assert ApiClient.objects.get(name="ward-app").rotated_at is not None


def test_rotations_and_revocations_are_in_the_clients_history_without_the_token(admin_client, admin_user,
                                                                                 issue_token):  # fmt: skip
    issue_token("patient:read", name="ward-app")
    target = ApiClient.objects.get(name="ward-app")
    page = _rotate(admin_client, target).content.decode()
    token = page.split("<code>")[1].split("</code>")[0]
    admin_client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [target.pk]})
    admin_client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [target.pk]})  # already revoked
    entries = LogEntry.objects.filter(object_id=str(target.pk), content_type__app_label="accounts").order_by("pk")
    assert [(e.user_id, e.action_flag) for e in entries] == [(admin_user.pk, CHANGE)] * 2
    messages = [e.get_change_message() for e in entries]
    assert "Rotated its token" in messages[0] and "Revoked its token" in messages[1]
    assert all(token not in e.change_message and token not in e.object_repr for e in entries)
    history = admin_client.get(f"{CHANGELIST}{target.pk}/history/").content.decode()
    assert "Rotated its token" in history and token not in history


def test_a_rotation_failing_half_way_rotates_none_so_no_token_is_lost(admin_client, issue_token, api, monkeypatch):
    """The action rotated client by client, each committed at once: when a later one failed (a database error)
    the request ended in a 500 and the earlier clients' new tokens, never shown, were their only ones: those
    applications were locked out until someone rotated them again."""
    from apps.accounts import admin as accounts_admin

    old = {name: issue_token("patient:read", name=name) for name in ("a-first", "b-second")}
    rotate = accounts_admin.api_client_rotate
    calls = []

    def failing_on_the_second(**kwargs):
        calls.append(kwargs["client"].name)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return rotate(**kwargs)

    monkeypatch.setattr(accounts_admin, "api_client_rotate", failing_on_the_second)
    selected = list(ApiClient.objects.values_list("pk", flat=True))
    with pytest.raises(RuntimeError):
        admin_client.post(CHANGELIST, {"action": "rotate_tokens", "_selected_action": selected})
    assert calls == ["a-first", "b-second"]
    for token in old.values():
        assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert not ApiClient.objects.filter(rotated_at__isnull=False).exists()


def test_a_revoked_client_cannot_be_shown_active_again(admin_client, issue_token, api):
    """Ticking 'active' on a revoked client was saved: the changelist then said active for a token every request
    refused (revoked_at stays), and whoever trusted the column was misled. A revoke is for good."""
    from django.core.exceptions import ValidationError

    from apps.accounts.services import api_client_update

    token = issue_token("patient:read", name="gone")
    api_client_revoke(client=ApiClient.objects.get(name="gone"))
    target = ApiClient.objects.get(name="gone")
    url = f"{CHANGELIST}{target.pk}/change/"
    assert 'name="is_active"' not in admin_client.get(url).content.decode()
    admin_client.post(url, {"description": "", "scopes": '["patient:read"]', "is_active": "on",
                            "expires_at_0": "", "expires_at_1": ""})  # fmt: skip
    assert not ApiClient.objects.get(pk=target.pk).is_active
    with pytest.raises(ValidationError):
        api_client_update(client=ApiClient.objects.get(pk=target.pk), is_active=True)
    assert not ApiClient.objects.get(pk=target.pk).is_active
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_a_benchmark_runs_own_token_is_never_rotated_to_a_person(admin_client):
    """A run's token holds `benchmark`, which lifts every rate limit, fail-closed ones included: issued only to the
    runner, never to an application. Rotating it (admin: a superuser or an Administrator holds the benchmark scope's
    permission; the command checks no scopes) handed a person a limitless token, and broke the run."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    from apps.accounts.services import api_client_create

    run_token = api_client_create(name="benchmark-run-7-1", scopes=["benchmark", "patient:read"]).client
    page = _rotate(admin_client, run_token).content.decode()
    assert "<code>cpk_" not in page and "not rotated; it is a benchmark run&#x27;s own token" in page
    out = StringIO()
    with pytest.raises(CommandError, match="benchmark run's own token"):
        call_command("rotate_api_client", "benchmark-run-7-1", stdout=out)
    assert "cpk_" not in out.getvalue()
    assert ApiClient.objects.get(pk=run_token.pk).rotated_at is None
