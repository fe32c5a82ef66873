"""Unknown bearer tokens and session cookies are remembered a few seconds by digest, in a bounded cache of
their own: a flood of made-up ones costs a query each at most, and never pushes a real client out.

Every test moves the negative caches' clocks itself: nothing depends on how fast the machine runs.
"""

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.selectors import api_client_for_token
from apps.accounts.services import api_clients_cache, token_hash, unknown_tokens
from apps.core.local_cache import NegativeCache
from apps.core.sessions import SessionStore, unknown_sessions

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def still_clocks(monkeypatch):
    now = [1000.0]
    for negative in (unknown_tokens, unknown_sessions):
        monkeypatch.setattr(negative, "clock", lambda: now[0])
        negative.clear()
    yield now
    unknown_tokens.clear()
    unknown_sessions.clear()


def _queries_on(table: str, context: CaptureQueriesContext) -> int:
    return sum(table in query["sql"] for query in context.captured_queries)


def _made_up_token() -> str:
    return f"cpk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def test_an_unknown_token_costs_one_query_until_it_is_forgotten(api, still_clocks):
    token = _made_up_token()
    with CaptureQueriesContext(connection) as context:
        for _ in range(5):
            response = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert _queries_on("accounts_apiclient", context) == 1
    still_clocks[0] += unknown_tokens.ttl
    with CaptureQueriesContext(connection) as context:
        api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert _queries_on("accounts_apiclient", context) == 1


def test_a_flood_of_distinct_tokens_is_bounded_and_keeps_the_known_client(monkeypatch, issue_token):
    """The flood's digests go to the negative cache alone: the known client's entry is still there after it
    (asserted on the structure, not on query counts that depend on the positive entry's wall-clock TTL)."""
    api_clients_cache.forget()
    token = issue_token("patient:read", name="ward-app")
    client = api_client_for_token(token)
    assert client is not None
    clears = api_clients_cache._clears  # bumped only by a change or by the shared cache going out of reach
    monkeypatch.setattr(unknown_tokens, "max_entries", 50)
    flood = [_made_up_token() for _ in range(200)]
    for made_up in flood:
        assert api_client_for_token(made_up) is None
    assert len(unknown_tokens) == 50
    assert token_hash(flood[-1]) in unknown_tokens and token_hash(flood[0]) not in unknown_tokens  # oldest out
    assert token_hash(token) not in unknown_tokens
    if api_clients_cache._clears == clears:
        assert token_hash(token) in api_clients_cache._entries
    assert api_client_for_token(token) == client


def _with_made_up_cookie(client):
    """The response deletes the cookie it found no session for: a flood sends it again every time."""
    client.cookies["sessionid"] = "k" * 32
    response = client.get("/dashboard/")
    assert response.status_code == 302  # signed out: to the login page
    return response


def test_an_unknown_session_cookie_costs_one_query_until_it_is_forgotten(client, still_clocks):
    with CaptureQueriesContext(connection) as context:
        for _ in range(3):
            _with_made_up_cookie(client)
    assert _queries_on("django_session", context) == 1
    still_clocks[0] += unknown_sessions.ttl
    with CaptureQueriesContext(connection) as context:
        _with_made_up_cookie(client)
    assert _queries_on("django_session", context) == 1


def test_a_session_saved_under_a_key_found_missing_is_read_at_once():
    key = "s" * 32
    assert SessionStore(key).load() == {}
    store = SessionStore(key)
    store["ward"] = "A"
    store.save()
    assert SessionStore(store.session_key).load() == {"ward": "A"}


def test_a_real_session_is_never_remembered_as_unknown(client, admin_user):
    client.force_login(admin_user)
    for _ in range(3):
        assert client.get("/dashboard/").status_code in (200, 503)  # 503: no dashboard build here
    assert len(unknown_sessions) == 0


def test_the_negative_cache_forgets_after_its_ttl_and_drops_the_oldest_first():
    now = [0.0]
    negative = NegativeCache(ttl=5.0, max_entries=2, clock=lambda: now[0])
    negative.add("a")
    negative.add("b")
    negative.add("c")
    assert "a" not in negative and "b" in negative and "c" in negative
    now[0] = 4.9
    assert "b" in negative
    now[0] = 5.0
    assert "b" not in negative and len(negative) == 1
