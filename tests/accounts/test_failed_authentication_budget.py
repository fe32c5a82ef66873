"""Failed bearer-token authentications are counted per client address on the real Redis: past the budget the
address's requests with a token not known valid are a 429 with Retry-After and no database lookup, a known
valid token from the same address still works, and with Redis away nothing is counted (a 401 stays a 401).

The budget is a test setting of 3 failures in 300 s; its window's end is brought about by expiring its Redis
keys and waited on as a condition, never slept through."""

import secrets
import time
from datetime import date

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection

from apps.accounts.failure_budget import known_valid_tokens
from apps.accounts.services import api_clients_cache, unknown_tokens
from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.core.ports import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.scoped_urls")]

BUDGET = 3
ADDRESS, NEIGHBOUR = "203.0.113.7", "198.51.100.9"


@pytest.fixture(autouse=True)
def small_budget(settings):
    settings.API_TOKEN_FAILURE_BUDGET = {"failures": BUDGET, "window_seconds": 300}
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()  # closes the shared cache's breaker too
    yield
    for remembered in (known_valid_tokens, unknown_tokens):
        remembered.clear()
    api_clients_cache.forget()


def _made_up() -> str:
    return f"cpk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def _get(api, token: str, address: str = ADDRESS, path: str = "/scoped/"):
    return api.get(path, HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=address)


def _spend_budget(api, address: str = ADDRESS) -> None:
    for _ in range(BUDGET):
        response = _get(api, _made_up(), address)
        assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_an_address_past_its_budget_gets_a_429_with_retry_after_and_no_lookup(api):
    _spend_budget(api)
    with CaptureQueriesContext(connection) as context:
        for header in (f"Bearer {_made_up()}", "Bearer", "Bearer a b"):
            response = api.get("/scoped/", HTTP_AUTHORIZATION=header, REMOTE_ADDR=ADDRESS)
            assert response.status_code == 429, response.content
            assert response.json()["code"] == "too_many_failed_authentications"
            assert 1 <= int(response["Retry-After"]) <= 300
            assert response.json()["retry_after_seconds"] == int(response["Retry-After"])
    assert not any("accounts_apiclient" in query["sql"] for query in context.captured_queries)


def test_malformed_and_unknown_tokens_count_as_failures(api):
    """Revoked and expired tokens of ours do not count (tests/accounts/test_stale_tokens_budget.py)."""
    assert api.get("/scoped/", HTTP_AUTHORIZATION="Bearer a b", REMOTE_ADDR=ADDRESS).status_code == 401
    assert api.get("/scoped/", HTTP_AUTHORIZATION="Bearer", REMOTE_ADDR=ADDRESS).status_code == 401
    assert _get(api, _made_up()).json()["code"] == "invalid_token"
    assert _get(api, _made_up()).status_code == 429


def test_another_address_is_not_affected(api):
    _spend_budget(api)
    assert _get(api, _made_up()).status_code == 429
    response = _get(api, _made_up(), NEIGHBOUR)
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_a_known_valid_token_from_the_address_still_works(api, issue_token):
    """A hospital's NAT: a neighbour spending the budget does not lock out a client this process knows."""
    token = issue_token("patient:read", name="ward-app")
    assert _get(api, token).status_code == 200
    _spend_budget(api)
    assert _get(api, _made_up()).status_code == 429
    assert _get(api, token).status_code == 200
    # Not yet seen valid by this process: refused like any other, and without a lookup.
    assert _get(api, issue_token("patient:read", name="other-app")).status_code == 429


def test_with_redis_down_a_failure_is_a_401_not_a_429_nor_a_500(api):
    _spend_budget(api)
    assert _get(api, _made_up()).status_code == 429
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(CACHES=unreachable):
        for _ in range(BUDGET * 2):
            response = _get(api, _made_up())
            assert response.status_code == 401, response.content
            assert response.json()["code"] == "invalid_token"
    cache.close()


def test_the_budget_is_spent_afresh_once_its_window_has_passed(api):
    """The window's end is brought about by expiring the limiter's log and the refusal marker in Redis, as
    their own expiry would: a 1 s window needed the failures to land within one second, which a loaded
    machine does not promise."""
    _spend_budget(api)
    refused = _get(api, _made_up())
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 300
    redis = get_redis_connection("default")
    keys = list(redis.scan_iter(match="*auth-failures*"))
    assert keys  # the log and the marker
    for key in keys:
        redis.pexpire(key, 1)
    deadline = time.monotonic() + 30
    while (response := _get(api, _made_up())).status_code == 429:
        assert time.monotonic() < deadline, "the address was still refused 30 s after its keys expired"
        time.sleep(0.05)
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_the_429_on_a_phi_view_is_audited_as_a_401_is(api, monkeypatch):
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test
    patient = patient_create(
        mrn="MRN-FB-0042", family_name="Nakamura", given_name="Kei", birth_date=date(1975, 6, 7), sex="male"
    )
    _spend_budget(api)  # on a view that audits nothing
    response = _get(api, _made_up(), path=f"/api/v1/patients/{patient.pk}/")
    assert response.status_code == 429
    [event] = AuditEvent.objects.all()
    assert (event.actor_type, event.action, event.outcome, event.patient_id, event.source_ip) == (
        "anonymous",
        "read",
        "denied",
        patient.pk,
        ADDRESS,
    )


def test_no_token_nor_address_reaches_redis_keys_or_logs(api, caplog):
    caplog.set_level("DEBUG")
    tokens = [_made_up() for _ in range(BUDGET + 1)]
    for token in tokens:
        _get(api, token)
    keys = [key.decode() for key in get_redis_connection("default").keys("*auth-failures*")]
    assert keys, "the failures were counted somewhere else"
    for key in keys:
        assert ADDRESS not in key and "cpk_" not in key
        assert not any(token[4:12] in key or token[13:21] in key for token in tokens)  # "cpk_<public>_<secret>"
    assert not any(token in record.getMessage() for token in tokens for record in caplog.records)


def test_a_default_cache_that_is_not_redis_counts_nothing_and_refuses_nothing(api):
    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=local):
        for _ in range(BUDGET * 2):
            response = _get(api, _made_up())
            assert response.status_code == 401 and response.json()["code"] == "invalid_token"
