"""`create_api_client` prints the token once, last; only its hash is stored."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiClient

pytestmark = pytest.mark.django_db


def _create(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_prints_token_last_and_stores_only_its_hash(api):
    lines = _create("ward-app", "--scopes", "patient:read,clinical:read,inference,audit:read", "--expires-days", "30")
    token = lines[-1]
    client = ApiClient.objects.get(name="ward-app")
    assert client.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = {field.name: str(getattr(client, field.name)) for field in ApiClient._meta.fields}
    assert all(token not in value for value in stored.values())
    assert client.scopes == ["audit:read", "clinical:read", "inference", "patient:read"]
    assert client.expires_at is not None
    response = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def test_unknown_scope_is_refused_with_the_known_ones():
    with pytest.raises(CommandError, match=r"Unknown scope\(s\): patients:everything.*patient:read"):
        _create("bad", "--scopes", "patient:read,patients:everything")
    assert not ApiClient.objects.filter(name="bad").exists()


def test_duplicate_name_is_refused():
    _create("twice", "--scopes", "inference")
    with pytest.raises(CommandError, match="name"):
        _create("twice", "--scopes", "inference")


def test_revoke_command_stops_the_token(api):
    token = _create("leaving", "--scopes", "inference")[-1]
    call_command("revoke_api_client", "leaving", stdout=StringIO())
    response = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    with pytest.raises(CommandError, match="No API client"):
        call_command("revoke_api_client", "nobody", stdout=StringIO())


def test_the_benchmark_scope_is_not_given_to_an_application():
    with pytest.raises(CommandError, match="issued only by the benchmark runner"):
        _create("limitless", "--scopes", "inference,benchmark")
    assert not ApiClient.objects.filter(name="limitless").exists()


def test_rotate_command_prints_the_new_token_once_last_and_the_old_one_stops(api):
    old = _create("ward-app", "--scopes", "patient:read", "--expires-days", "30")[-1]
    before = ApiClient.objects.get(name="ward-app").expires_at
    out = StringIO()
    call_command("rotate_api_client", "ward-app", stdout=out)
    lines = out.getvalue().strip().splitlines()
    new = lines[-1]
    assert new.startswith("cpk_") and new != old and sum(new in line for line in lines) == 1
    client = ApiClient.objects.get(name="ward-app")
    assert client.token_hash == hashlib.sha256(new.encode()).hexdigest() and client.expires_at == before
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {old}").status_code == 401
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {new}").status_code == 200


def test_rotate_command_prints_no_token_for_a_revoked_or_expired_client():
    _create("leaving", "--scopes", "inference")
    call_command("revoke_api_client", "leaving", stdout=StringIO())
    out = StringIO()
    with pytest.raises(CommandError, match="revoked; create a new client"):
        call_command("rotate_api_client", "leaving", stdout=out)
    assert "cpk_" not in out.getvalue()
    _create("lapsed", "--scopes", "inference", "--expires-days", "1")
    ApiClient.objects.filter(name="lapsed").update(expires_at=ApiClient.objects.get(name="lapsed").created_at)
    with pytest.raises(CommandError, match="pass --expires-days"):
        call_command("rotate_api_client", "lapsed", stdout=StringIO())
    call_command("rotate_api_client", "lapsed", "--expires-days", "7", stdout=out)
    assert not ApiClient.objects.get(name="lapsed").is_expired
    with pytest.raises(CommandError, match="No API client"):
        call_command("rotate_api_client", "nobody", stdout=StringIO())
