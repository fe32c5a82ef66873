"""A revoked or expired token of ours, presented whole, is no guess: it does not count against its address's
failed-authentication budget. It did: behind a hospital's NAT one clinician's app retrying a stale token spent
the address's budget, and every token of the ward not yet known valid to the process was refused (429).

The budget is a test setting of 3 failures in 300 s, on the real Redis (tests/accounts/test_failed_authentication_
budget.py counts the failures that still count)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.failure_budget import known_valid_tokens
from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_revoke, api_clients_cache, unknown_tokens

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.scoped_urls")]

BUDGET = 3
NAT = "203.0.113.20"


@pytest.fixture(autouse=True)
def small_budget(settings):
    settings.API_TOKEN_FAILURE_BUDGET = {"failures": BUDGET, "window_seconds": 300}
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()
    yield
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()


def _get(api, token: str):
    return api.get("/scoped/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=NAT)


def _made_up() -> str:
    return f"cpk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def revoked(issue_token) -> str:
    token = issue_token("patient:read", name="stale-revoked")
    api_client_revoke(client=ApiClient.objects.get(name="stale-revoked"))
    return token


@pytest.fixture
def expired(issue_token) -> str:
    return issue_token("patient:read", name="stale-expired", expires_at=timezone.now() - timedelta(days=1))


@pytest.mark.parametrize(("stale", "code"), [("revoked", "token_revoked"), ("expired", "token_expired")])
def test_a_stale_token_retried_never_locks_out_the_address(api, issue_token, request, stale, code):
    token = request.getfixturevalue(stale)
    for _ in range(3 * BUDGET):
        response = _get(api, token)
        assert response.status_code == 401 and response.json()["code"] == code
    # A colleague's valid token behind the same address, never seen by this process: served, not a 429.
    assert _get(api, issue_token("patient:read", name="ward-app")).status_code == 200
    # And the budget is whole: a made-up token is still a 401 until the budget's failures are spent.
    for _ in range(BUDGET):
        assert _get(api, _made_up()).json()["code"] == "invalid_token"
    assert _get(api, _made_up()).status_code == 429


def test_a_known_valid_token_revoked_is_forgotten_and_not_counted(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    api_client_revoke(client=ApiClient.objects.get(name="ward-app"))
    api_clients_cache.forget()
    for _ in range(2 * BUDGET):
        assert _get(api, token).json()["code"] == "token_revoked"
    assert _get(api, issue_token("patient:read", name="other-app")).status_code == 200


def test_a_token_of_ours_with_a_wrong_secret_still_counts(api, issue_token):
    token = issue_token("patient:read", name="ward-app")
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(BUDGET):
        assert _get(api, wrong).json()["code"] == "invalid_token"
    assert _get(api, wrong).status_code == 429
