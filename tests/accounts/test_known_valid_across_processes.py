"""A token one process saw authenticate is known valid to the others through Redis: a worker just started (a
deploy, a restart, another gunicorn worker) lets it through its address's refusal, whose budget a neighbour
behind the same NAT spent, instead of refusing it for the window. What Redis holds only grants the database
lookup: a revoked or deleted token is still refused, and forgotten. Redis never holds the token nor the digest
the database looks it up by.

A fresh process is this one with its own memory cleared (the known-valid set, the client cache); the Redis
and PostgreSQL they share are the real ones. The budget is a test setting of 3 failures in 300 s."""

import secrets

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection

from apps.accounts.failure_budget import known_valid_tokens
from apps.accounts.models import ApiClient
from apps.accounts.services import (
    api_client_create,
    api_client_delete,
    api_client_revoke,
    api_client_rotate,
    api_clients_cache,
    token_hash,
    unknown_tokens,
)
from apps.core.ports import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.scoped_urls")]

BUDGET = 3
ADDRESS = "203.0.113.7"
KNOWN_VALID_KEYS = "auth-known-valid:*"


def _fresh_process() -> None:
    """What a process just started remembers: nothing of its own."""
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()  # closes the shared cache's breaker too


@pytest.fixture(autouse=True)
def small_budget(settings):
    settings.API_TOKEN_FAILURE_BUDGET = {"failures": BUDGET, "window_seconds": 300}
    _fresh_process()
    yield
    _fresh_process()


def _made_up() -> str:
    return f"cpk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def _get(api, token: str, address: str = ADDRESS):
    return api.get("/scoped/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def _spend_budget(api) -> None:
    """What remains of the address's budget (a failure of the test's own counts too)."""
    for _ in range(BUDGET):
        response = _get(api, _made_up())
        if response.status_code == 429:
            break
        assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert _get(api, _made_up()).status_code == 429


def _known_valid_keys() -> list[bytes]:
    return list(get_redis_connection("default").scan_iter(match=KNOWN_VALID_KEYS))


def test_a_token_another_process_saw_valid_passes_the_address_refusal(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200  # process A
    _fresh_process()  # process B, after a deploy
    _spend_budget(api)  # a neighbour behind the same NAT
    response = _get(api, token)
    assert response.status_code == 200, response.content  # the old code: 429 too_many_failed_authentications
    assert token_hash(token) in known_valid_tokens  # B knows it now, at no cost from here on
    # Never seen valid by any process: refused as before.
    assert _get(api, issue_token("patient:read", name="other-app")).status_code == 429


def test_a_revoked_token_known_valid_elsewhere_is_refused_by_the_lookup_and_forgotten(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    assert len(_known_valid_keys()) == 1
    api_client_revoke(client=ApiClient.objects.get(name="ward-app"))
    _fresh_process()
    _spend_budget(api)
    response = _get(api, token)
    assert response.status_code == 401 and response.json()["code"] == "token_revoked"
    assert _known_valid_keys() == []
    assert token_hash(token) not in known_valid_tokens
    # Forgotten everywhere: from now on refused before any lookup, as any token not known valid.
    _fresh_process()
    with CaptureQueriesContext(connection) as context:
        assert _get(api, token).status_code == 429
    assert not any("accounts_apiclient" in query["sql"] for query in context.captured_queries)


def test_a_revoked_token_known_valid_here_is_forgotten_by_the_other_processes_too(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    api_client_revoke(client=ApiClient.objects.get(name="ward-app"))
    assert _get(api, token).json()["code"] == "token_revoked"  # this process knew it valid
    assert _known_valid_keys() == []
    _fresh_process()
    _spend_budget(api)
    assert _get(api, token).status_code == 429


def test_a_deleted_clients_token_known_valid_elsewhere_is_refused(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    api_client_delete(client=ApiClient.objects.get(name="ward-app"))
    _fresh_process()
    _spend_budget(api)
    response = _get(api, token)
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert _known_valid_keys() == []


def test_redis_holds_neither_the_token_nor_its_stored_digest(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    _spend_budget(api)
    stored = ApiClient.objects.get(name="ward-app").token_hash
    assert stored == token_hash(token)
    redis = get_redis_connection("default")
    assert len(_known_valid_keys()) == 1  # the old code: none, nothing shared
    secret = token.split("_", 2)[2]
    pieces = [token, secret, stored, stored[:16], stored[-16:], secret[:16], token[4:12]]
    for key in redis.scan_iter(match="*"):
        if redis.type(key) != b"string":
            continue  # the limiter's log: random members, checked by the failure budget's own tests
        text = key.decode() + (redis.get(key) or b"").decode(errors="replace")
        assert not any(piece in text for piece in pieces), key


def test_the_shared_key_is_written_once_a_process_not_on_every_request(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    redis = get_redis_connection("default")
    [marker] = _known_valid_keys()
    redis.set(marker, "untouched", keepttl=True)
    for _ in range(3):
        assert _get(api, token).status_code == 200
    assert redis.get(marker) == b"untouched"


def test_a_token_of_a_rolled_back_transaction_is_not_shared(api):
    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        token = api_client_create(name="ward-app", scopes=["patient:read"]).token
        assert _get(api, token).status_code == 200
        raise RolledBack
    assert _known_valid_keys() == []


def test_an_unknown_token_over_budget_is_a_429_without_a_database_query(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200  # something is known valid in Redis
    _fresh_process()
    _spend_budget(api)
    with CaptureQueriesContext(connection) as context:
        for _ in range(3):
            response = _get(api, _made_up())
            assert response.status_code == 429
            assert response.json()["code"] == "too_many_failed_authentications"
    assert not any("accounts_apiclient" in query["sql"] for query in context.captured_queries)


def test_with_redis_down_a_valid_token_still_authenticates(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(CACHES=unreachable):
        assert _get(api, token).status_code == 200
        assert token_hash(token) in known_valid_tokens  # known to this process all the same
        assert _get(api, token).status_code == 200
    cache.close()


@pytest.mark.parametrize("end", ["revoke", "rotate", "delete"])
def test_a_token_ended_in_admin_is_no_longer_known_valid_anywhere(
    api, issue_token, django_capture_on_commit_callbacks, end
):
    """Once its revocation, rotation or deletion commits, the shared key goes: from an address over its budget
    the old token is refused before any lookup, not looked up (and refused) by each process in turn."""
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    assert len(_known_valid_keys()) == 1
    client = ApiClient.objects.get(name="ward-app")
    with django_capture_on_commit_callbacks(execute=True):
        {"revoke": api_client_revoke, "rotate": api_client_rotate, "delete": api_client_delete}[end](client=client)
    assert _known_valid_keys() == []  # was: left for its two hours
    _fresh_process()
    _spend_budget(api)
    with CaptureQueriesContext(connection) as context:
        assert _get(api, token).status_code == 429
    assert not any("accounts_apiclient" in query["sql"] for query in context.captured_queries)
