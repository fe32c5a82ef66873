"""A rotation racing a revoke (two admins, or an admin and the command): the rotation read the client before the
revoke committed, then rotated it anyway and showed a new token for a revoked client. Each rotation now checks
the client on its row, locked, so it waits for the revoke and sees it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create, api_client_revoke
from tests.helpers import behind_an_uncommitted_insert

pytestmark = pytest.mark.django_db(transaction=True)


def _revoke_elsewhere():
    return behind_an_uncommitted_insert(lambda: api_client_revoke(client=ApiClient.objects.get(name="ward-app")))


def test_the_command_prints_no_token_for_a_client_revoked_while_it_ran():
    api_client_create(name="ward-app", scopes=["inference"])
    out = StringIO()
    with _revoke_elsewhere(), pytest.raises(CommandError, match="is revoked"):
        call_command("rotate_api_client", "ward-app", stdout=out)
    assert "cpk_" not in out.getvalue()
    assert ApiClient.objects.get(name="ward-app").rotated_at is None


def test_admin_shows_no_token_for_a_client_revoked_while_it_rotated(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-Long-enough-1")
    target = api_client_create(name="ward-app", scopes=["inference"]).client
    client.force_login(admin)
    with _revoke_elsewhere():
        response = client.post(
            "/admin/accounts/apiclient/", {"action": "rotate_tokens", "_selected_action": [target.pk]}, follow=True
        )
    page = response.content.decode()
    assert "<code>cpk_" not in page and "not rotated; it is revoked" in page
    assert ApiClient.objects.get(pk=target.pk).rotated_at is None
