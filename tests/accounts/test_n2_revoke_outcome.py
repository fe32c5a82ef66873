"""A revoke says whether it revoked anything: one committed after the caller read the client (another admin,
the command, a benchmark run's clean-up) leaves the first revocation as it was (237b12e), and the admin action
and the command must not then record or report a revoke of their own (b5cbb36 wrote "Revoked its token." under
the admin who revoked nothing)."""

from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create, api_client_revoke

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/apiclient/"


def test_only_the_first_revoke_says_it_revoked():
    api_client_create(name="ward-app", scopes=["inference"])
    stale = ApiClient.objects.get(name="ward-app")  # read before the first revoke: revoked_at None here
    first = api_client_revoke(client=ApiClient.objects.get(name="ward-app"))
    again = api_client_revoke(client=stale)
    assert first.revoked and not again.revoked
    assert again.revoked_at == first.revoked_at == ApiClient.objects.get(name="ward-app").revoked_at


def test_a_revoke_of_a_deleted_client_says_it_revoked_nothing():
    api_client_create(name="ward-app", scopes=["inference"])
    client = ApiClient.objects.get(name="ward-app")
    ApiClient.objects.filter(pk=client.pk).delete()
    assert not api_client_revoke(client=client).revoked


def test_the_admin_action_neither_logs_nor_counts_a_revoke_committed_after_its_read(admin_client, monkeypatch):
    from apps.accounts import admin as accounts_admin

    api_client_create(name="ward-app", scopes=["inference"])
    api_client_create(name="pharmacy", scopes=["inference"])
    target = ApiClient.objects.get(name="ward-app")
    service = accounts_admin.api_client_revoke

    def another_revoke_commits_first(*, client):
        if client.pk == target.pk:  # the command, say, between the changelist's read and this revoke
            service(client=ApiClient.objects.get(pk=client.pk))
        return service(client=client)

    monkeypatch.setattr(accounts_admin, "api_client_revoke", another_revoke_commits_first)
    selected = list(ApiClient.objects.values_list("pk", flat=True))
    page = admin_client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": selected}, follow=True)
    assert "Revoked 1 client(s)." in page.content.decode()
    logged = [
        (e.object_repr, e.get_change_message()) for e in LogEntry.objects.filter(content_type__app_label="accounts")
    ]
    assert logged == [("pharmacy", "Revoked its token.")]


def test_the_command_says_a_client_was_already_revoked_and_when():
    api_client_create(name="ward-app", scopes=["inference"])
    first, second = StringIO(), StringIO()
    call_command("revoke_api_client", "ward-app", stdout=first)
    revoked_at = ApiClient.objects.get(name="ward-app").revoked_at
    call_command("revoke_api_client", "ward-app", stdout=second)
    assert first.getvalue().strip() == "Revoked API client 'ward-app'."
    assert second.getvalue().strip() == f"API client 'ward-app' was already revoked, at {revoked_at.isoformat()}."
