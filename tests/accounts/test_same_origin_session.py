"""SameOriginJSONSessionAuthentication: a staff session's POST to a patient endpoint needs evidence that a page of
this site sent it (Sec-Fetch-Site: same-origin, a trusted Origin, an HTTPS Referer of this site, or the CSRF
token whoami gives). The patient window took a session POST with none of it: a forged cross-site POST with no
Origin ran an audited PHI search in the signed-in clinician's name."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.same_origin_urls")]

WINDOW = "/same-origin-window/"
SEARCH = {"name": "ok"}


@pytest.fixture
def browser(admin_user) -> APIClient:
    """A signed-in staff member's browser: CSRF enforced, as for a real session."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    return client


@pytest.fixture
def patients(db) -> list:
    return [
        patient_create(mrn=f"MRN-SO{i}", family_name=name, given_name="Al", birth_date=date(1970, 1, 1 + i))
        for i, name in enumerate(["Okafor", "Okonkwo", "Smith"])
    ]


def _refused_without_a_record(response) -> None:
    assert response.status_code == 403, response.content[:300]
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Origin, no fetch metadata, no token: a forged post from a browser that sends none
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_SEC_FETCH_SITE": "same-site"},
        {"HTTP_SEC_FETCH_SITE": "none"},
        {"HTTP_ORIGIN": "https://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_REFERER": "http://testserver/dashboard/patients"},  # plain HTTP: not evidence
    ],
)
def test_a_session_post_without_evidence_of_this_site_is_refused_and_searches_nothing(browser, patients, headers):
    before = AuditEvent.objects.count()
    _refused_without_a_record(browser.post(WINDOW, SEARCH, format="json", **headers))
    assert AuditEvent.objects.count() == before


def test_a_forged_form_or_text_post_is_refused_too(browser, patients):
    before = AuditEvent.objects.count()
    _refused_without_a_record(browser.post(WINDOW, "name=ok", content_type="application/x-www-form-urlencoded"))
    _refused_without_a_record(browser.post(WINDOW, '{"name": "ok"}', content_type="text/plain"))
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({"HTTP_SEC_FETCH_SITE": "same-origin"}, False),
        ({"HTTP_ORIGIN": "http://testserver"}, False),
        ({"HTTP_ORIGIN": "https://testserver"}, True),
        ({"HTTP_REFERER": "https://testserver/dashboard/patients"}, True),
    ],
)
def test_a_session_post_from_this_site_runs_the_audited_search(browser, patients, admin_user, headers, secure):
    response = browser.post(WINDOW, SEARCH, format="json", secure=secure, **headers)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["count"] == 2
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.actor_id) == ("search", admin_user.pk)


def test_an_https_referer_of_another_site_is_no_evidence(browser, patients):
    _refused_without_a_record(
        browser.post(WINDOW, SEARCH, format="json", secure=True, HTTP_REFERER="https://evil.example/x")
    )


@pytest.mark.parametrize(
    ("trusted", "origin", "allowed"),
    [
        (["https://dashboard.example.org"], "https://dashboard.example.org", True),
        (["https://*.example.org"], "https://ward.example.org", True),
        (["https://*.example.org"], "http://ward.example.org", False),  # the scheme counts
        (["https://*.example.org"], "https://example.org.evil.example", False),
    ],
)
def test_an_origin_of_csrf_trusted_origins_counts_by_djangos_rules(
    browser, patients, settings, trusted, origin, allowed
):
    settings.CSRF_TRUSTED_ORIGINS = trusted
    response = browser.post(WINDOW, SEARCH, format="json", HTTP_ORIGIN=origin)
    assert response.status_code == (200 if allowed else 403), response.content[:300]


def test_the_csrf_token_from_whoami_lets_the_post_through(browser, patients):
    token = browser.get("/api/v1/whoami/").json()["csrf_token"]
    assert token
    before = AuditEvent.objects.count()
    _refused_without_a_record(browser.post(WINDOW, SEARCH, format="json", HTTP_X_CSRFTOKEN="x" * 32))
    assert AuditEvent.objects.count() == before
    response = browser.post(WINDOW, SEARCH, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content[:300]


def test_a_foreign_origin_is_refused_even_with_the_token(browser, patients):
    token = browser.get("/api/v1/whoami/").json()["csrf_token"]
    response = browser.post(WINDOW, SEARCH, format="json", HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN="https://evil.example")
    _refused_without_a_record(response)


def test_whoami_gives_a_bearer_client_no_csrf_token(api, issue_token):
    response = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert response.status_code == 200 and "csrf_token" not in response.json()


def test_a_bearer_client_needs_no_evidence(api, issue_token, patients):
    response = api.post(WINDOW, SEARCH, format="json", HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert response.status_code == 200, response.content[:300]
