"""The negative cache remembers only committed truth: a token looked up inside a transaction that rotates its
client away, then rolls back, is still its client's at once, not refused for the cache's 5 s."""

import pytest
from django.db import transaction

from apps.accounts.models import ApiClient
from apps.accounts.selectors import api_client_for_token
from apps.accounts.services import api_client_rotate, api_clients_cache, token_hash, unknown_tokens

pytestmark = pytest.mark.django_db


class _RolledBack(Exception):
    pass


@pytest.fixture(autouse=True)
def _nothing_remembered():
    unknown_tokens.clear()
    api_clients_cache.forget()
    yield
    unknown_tokens.clear()
    api_clients_cache.forget()


def test_a_token_found_unknown_inside_a_rolled_back_rotation_is_still_its_clients(issue_token):
    token = issue_token("patient:read", name="ward-app")
    client = ApiClient.objects.get(name="ward-app")
    with pytest.raises(_RolledBack), transaction.atomic():
        api_client_rotate(client=client)
        assert api_client_for_token(token) is None  # rotated away, as this transaction sees it
        raise _RolledBack
    assert token_hash(token) not in unknown_tokens
    assert api_client_for_token(token).pk == client.pk


def test_a_token_found_unknown_inside_a_committed_rotation_is_remembered_once_it_commits(
    issue_token, django_capture_on_commit_callbacks
):
    token = issue_token("patient:read", name="ward-app")
    client = ApiClient.objects.get(name="ward-app")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        api_client_rotate(client=client)
        assert api_client_for_token(token) is None
        assert token_hash(token) not in unknown_tokens  # not before the commit
    assert token_hash(token) in unknown_tokens


def test_a_token_found_unknown_outside_a_transaction_is_remembered_at_once():
    made_up = "cpk_00000000_" + "x" * 43
    assert api_client_for_token(made_up) is None
    assert token_hash(made_up) in unknown_tokens
