"""A token's expiry is judged on the database's clock, which its expiry was set against: a host whose clock runs
behind let a token that expired 30 minutes ago in (review c, finding 4), one ahead refused a valid one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import api_clients_cache

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "expires_in,host_skew,status",
    [
        (timedelta(minutes=-30), timedelta(hours=-2), 401),  # expired; the host two hours behind
        (timedelta(minutes=30), timedelta(hours=2), 200),  # valid; the host two hours ahead
    ],
    ids=["expired-host-behind", "valid-host-ahead"],
)
def test_token_expiry_on_a_host_whose_clock_is_off(api, issue_token, monkeypatch, expires_in, host_skew, status):
    token = issue_token("audit:read", expires_at=timezone.now() + expires_in)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api_clients_cache.forget()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + host_skew)
    for attempt in ("looked up", "from this process's cache"):
        response = api.get("/api/v1/audit/")
        assert response.status_code == status, (attempt, response.status_code, response.content[:200])
    if status == 401:
        assert response.json()["code"] == "token_expired"


def test_a_cached_client_expires_on_the_databases_clock_while_cached(api, issue_token, monkeypatch):
    """The client stays in the process's cache for seconds: its expiry is read again at each request, on the
    database's time (the offset measured at the lookup), so a token expiring meanwhile is refused at once."""
    token = issue_token("audit:read", expires_at=timezone.now() + timedelta(minutes=1))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    api_clients_cache.forget()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(hours=2))  # the host two hours behind
    assert api.get("/api/v1/audit/").status_code == 200  # looked up and cached
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(hours=2) + timedelta(minutes=2))
    response = api.get("/api/v1/audit/")  # two minutes later on this host's clock, from the cache
    assert response.status_code == 401, response.content[:200]
    assert response.json()["code"] == "token_expired"
