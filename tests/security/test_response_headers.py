"""Security headers on every kind of response, the data plane's included: PHI answers are never stored by a
browser or a proxy, and HSTS, nosniff and the framing refusal reach JSON, FHIR and error responses too."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def phi_paths(api, issue_token):
    token = issue_token("patient:read", "patient:write", "clinical:read", "audit:read", name="ward-app")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    patient = {"mrn": "MRN-5521", "family_name": "Okafor", "given_name": "Ada", "birth_date": "1971-02-03",
               "sex": "female"}  # fmt: skip
    created = api.post("/api/v1/patients/", patient, format="json", **auth)
    assert created.status_code == 201
    patient_id = created.json()["id"]
    return auth, [
        ("get", f"/api/v1/patients/{patient_id}/", {}),
        ("post", "/api/v1/patients/lookup/", {"mrn": "MRN-5521"}),
        ("get", f"/api/v1/patients/{patient_id}/vitals/", {}),
        ("get", "/api/v1/audit/", {}),
        ("get", f"/fhir/Patient/{patient_id}", {}),
        ("get", "/fhir/Patient", {"family": "Okafor"}),
        ("get", "/api/v1/patients/999999/", {}),  # a 404 still says which ids exist
    ]


def test_phi_answers_and_api_errors_are_never_stored(api, phi_paths):
    auth, paths = phi_paths
    for method, path, data in paths:
        response = (
            getattr(api, method)(path, data, format="json", **auth) if method == "post" else api.get(path, data, **auth)
        )
        assert response.status_code in (200, 404), (path, response.status_code)
        assert "no-store" in response["Cache-Control"], path
    for refused in (api.get("/api/v1/whoami/"), api.get("/api/v1/whoami/", HTTP_AUTHORIZATION="Bearer cpk_x_y")):
        assert refused.status_code == 401 and refused["Cache-Control"] == "no-store"


def test_the_staff_dashboard_reads_with_a_session_are_never_stored(api, admin_user, phi_paths):
    api.force_login(admin_user)
    assert api.get("/api/v1/services/")["Cache-Control"] == "no-store"
    assert "no-store" in api.get("/api/v1/audit/")["Cache-Control"]


def test_responses_that_choose_their_own_caching_keep_it(client):
    assert client.get("/static/admin/css/base.css")["Cache-Control"].startswith("max-age=")
    assert client.get("/favicon.ico")["Cache-Control"] == "public, max-age=86400"
    assert "no-store" in client.get("/admin/login/")["Cache-Control"]  # never_cache's own list


PRODUCTION = {
    "DEBUG": False,
    "ALLOWED_HOSTS": ["testserver"],
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


@override_settings(**PRODUCTION)
def test_hsts_nosniff_and_no_framing_on_api_fhir_and_error_responses(phi_paths):
    auth, paths = phi_paths
    browser = Client(raise_request_exception=False)  # built after the override: its middleware reads the settings
    responses = [browser.get(path, data, HTTP_X_FORWARDED_PROTO="https", **auth) for method, path, data in paths
                 if method == "get"]  # fmt: skip
    responses += [
        browser.get("/api/v1/whoami/", HTTP_X_FORWARDED_PROTO="https"),  # 401
        browser.get("/fhir/Unknown", HTTP_X_FORWARDED_PROTO="https", **auth),  # an OperationOutcome
        browser.get("/api/v1/patients/%00/", HTTP_X_FORWARDED_PROTO="https", **auth),  # refused before any view
        browser.get("/healthz", HTTP_X_FORWARDED_PROTO="https"),
    ]
    for response in responses:
        assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert "no-store" in response["Cache-Control"]


@override_settings(**PRODUCTION)
def test_answers_made_before_any_view_refuse_framing_in_the_older_header_too():
    """The NUL refusal, a static file and a DisallowedHost 400 answer above XFrameOptionsMiddleware's old place:
    they went without X-Frame-Options, which browsers that read no CSP frame-ancestors rely on."""
    browser = Client(raise_request_exception=False)
    responses = [
        browser.get("/api/v1/patients/%00/"),
        browser.get("/static/admin/css/base.css"),
        browser.get("/healthz", HTTP_HOST="evil.example"),
    ]
    assert [response.status_code for response in responses] == [400, 200, 400]
    for response in responses:
        assert response["X-Frame-Options"] == "DENY"
