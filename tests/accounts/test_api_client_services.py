"""The API-client services write only what they change: an instance read before a revoke or a rotation
(an admin form opened earlier, an object kept in memory) must not bring the old token back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create, api_client_revoke, api_client_rotate, api_client_update

pytestmark = pytest.mark.django_db


def _status(api, token: str) -> int:
    return api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def test_an_edit_from_an_instance_read_before_a_revoke_leaves_the_token_revoked(api):
    token = api_client_create(name="ward-app", scopes=["patient:read"]).token
    stale = ApiClient.objects.get(name="ward-app")  # e.g. an admin's change form, opened before the revoke
    api_client_revoke(client=ApiClient.objects.get(name="ward-app"))
    api_client_update(client=stale, description="ward 7 tablets")

    stored = ApiClient.objects.get(name="ward-app")
    assert stored.revoked_at is not None and not stored.is_active
    assert stored.description == "ward 7 tablets"
    assert _status(api, token) == 401


def test_an_edit_from_an_instance_read_before_a_rotation_keeps_the_new_token(api):
    old = api_client_create(name="ward-app", scopes=["patient:read"]).token
    stale = ApiClient.objects.get(name="ward-app")
    new = api_client_rotate(client=ApiClient.objects.get(name="ward-app")).token
    api_client_update(client=stale, scopes=["patient:read", "clinical:read"])

    assert _status(api, old) == 401  # the rotated-away token stays dead
    assert _status(api, new) == 200
    assert ApiClient.objects.get(name="ward-app").scopes == ["clinical:read", "patient:read"]


def test_a_rotation_from_a_stale_instance_keeps_the_expiry_an_admin_set_meanwhile():
    api_client_create(name="ward-app", scopes=["patient:read"])
    stale = ApiClient.objects.get(name="ward-app")
    soon = timezone.now() + timedelta(days=7)
    api_client_update(client=ApiClient.objects.get(name="ward-app"), expires_at=soon)
    api_client_rotate(client=stale)
    assert ApiClient.objects.get(name="ward-app").expires_at == soon


def test_a_revoke_from_a_stale_instance_keeps_the_first_revocations_time():
    """revoked_at is when the token stopped working, what an investigation of a leak asks first: a second revoke
    from an instance read before the first (the command, a benchmark run's clean-up, an admin's action) wrote its
    own later time over it, as if the token had worked until then."""
    api_client_create(name="ward-app", scopes=["patient:read"])
    stale = ApiClient.objects.get(name="ward-app")
    first = api_client_revoke(client=ApiClient.objects.get(name="ward-app")).revoked_at
    again = api_client_revoke(client=stale)
    stored = ApiClient.objects.get(name="ward-app")
    assert stored.revoked_at == first and again.revoked_at == first and not stored.is_active


def test_an_issued_tokens_repr_never_shows_the_token():
    """An IssuedToken is a local of the runner, the admin action and the commands: its dataclass repr carried the
    token into any traceback that shows locals (Django's debug page, an error tracker) or a log line that
    formats it."""
    issued = api_client_create(name="ward-app", scopes=["patient:read"])
    assert issued.token not in repr(issued) and issued.token not in str(issued)
    assert issued.token not in repr([issued])


def test_the_runner_only_scope_check_reads_the_stored_scopes_not_the_instances():
    """api_client_update judged 'added' against the instance it was given, which admin's form (and any caller
    that sets the field first) had already changed: the benchmark scope then counted as held before."""
    from django.core.exceptions import ValidationError

    client = api_client_create(name="ward-app", scopes=["inference"]).client
    client.scopes = ["benchmark", "inference"]
    with pytest.raises(ValidationError, match="benchmark runner"):
        api_client_update(client=client, scopes=["benchmark", "inference"])
    assert ApiClient.objects.get(name="ward-app").scopes == ["inference"]
