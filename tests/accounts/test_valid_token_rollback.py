"""A token exists once its transaction commits: one authenticated inside a transaction that creates or rotates its
client, then rolls back, is not remembered as valid (the client cache's 5 s, the failure budget's known-valid
hour). Inside a transaction that commits, it works at once and afterwards."""

import pytest
from django.db import transaction

from apps.accounts.failure_budget import known_valid_tokens
from apps.accounts.models import ApiClient
from apps.accounts.selectors import api_client_for_token
from apps.accounts.services import api_client_create, api_client_rotate, api_clients_cache, token_hash, unknown_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.scoped_urls")]


class _RolledBack(Exception):
    pass


@pytest.fixture(autouse=True)
def _nothing_remembered():
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()
    yield
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()


def _get(api, token: str):
    return api.get("/scoped/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="203.0.113.7")


def test_a_token_created_in_a_rolled_back_transaction_is_not_remembered_valid(api):
    with pytest.raises(_RolledBack), transaction.atomic():
        token = api_client_create(name="ward-app", scopes=["patient:read"]).token
        assert _get(api, token).status_code == 200  # valid as this transaction sees it
        raise _RolledBack
    assert not ApiClient.objects.filter(name="ward-app").exists()
    assert api_client_for_token(token) is None
    response = _get(api, token)
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert token_hash(token) not in known_valid_tokens


def test_a_token_rotated_in_a_rolled_back_transaction_is_not_remembered_valid(api, issue_token):
    old = issue_token("patient:read", name="ward-app")
    client = ApiClient.objects.get(name="ward-app")
    with pytest.raises(_RolledBack), transaction.atomic():
        new = api_client_rotate(client=client).token
        assert _get(api, new).status_code == 200
        raise _RolledBack
    assert api_client_for_token(new) is None
    assert _get(api, new).status_code == 401
    assert token_hash(new) not in known_valid_tokens
    assert _get(api, old).status_code == 200  # the rotation never happened


def test_a_token_created_in_a_committed_transaction_is_remembered_once_it_commits(
    api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        token = api_client_create(name="ward-app", scopes=["patient:read"]).token
        assert _get(api, token).status_code == 200
        assert token_hash(token) not in known_valid_tokens  # not before the commit
    assert token_hash(token) in known_valid_tokens
    assert _get(api, token).status_code == 200
    assert token_hash(token) in api_clients_cache._entries  # cached by the lookup outside the transaction


def test_a_token_authenticated_outside_a_transaction_is_remembered_at_once(api, issue_token):
    token = issue_token("patient:read")
    assert _get(api, token).status_code == 200
    assert token_hash(token) in known_valid_tokens
