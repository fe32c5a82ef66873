"""A body past DATA_UPLOAD_MAX_MEMORY_SIZE sent with a Content-Length: Django raised RequestDataTooBig, which the
product answered 400 `bad_request` naming a setting (under DEBUG an HTML page), while the same body sent chunked
got the 413 `request_too_large` naming the limit in bytes (apps/core/chunked.py). Every API now answers it as
the chunked body is answered, with DEBUG on or off: that JSON under /api/, an OperationOutcome 413 under /fhir/.
Other pages (the admin) keep Django's own 400."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.core.chunked import chunked_body_limit

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"


def _detail() -> str:
    return f"The request body is larger than {chunked_body_limit()} bytes."


def _too_large_json(limit: int | None = None) -> bytes:
    """A valid JSON object just past the limit."""
    raw = json.dumps({"name": "x" * ((limit or chunked_body_limit()) + 10)}).encode()
    assert len(raw) > (limit or chunked_body_limit())
    return raw


def _client() -> Client:
    return Client(raise_request_exception=False)


def _assert_json_413(response) -> None:
    assert response.status_code == 413, response.content[:300]  # was 400 (an HTML page under DEBUG)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": _detail(), "code": "request_too_large"}


@pytest.mark.parametrize("debug", [False, True])
def test_a_patient_create_past_the_limit_is_a_json_413(issue_token, settings, debug):
    settings.DEBUG = debug
    token = issue_token("patient:read", "patient:write")
    response = _client().post(
        "/api/v1/patients/", _too_large_json(), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    _assert_json_413(response)


@pytest.mark.parametrize("debug", [False, True])
def test_a_service_create_past_the_limit_is_a_json_413(operator_user, settings, debug):
    settings.DEBUG = debug
    client = _client()
    client.force_login(operator_user)
    response = client.post("/api/v1/services/", _too_large_json(), content_type="application/json")
    _assert_json_413(response)


@pytest.mark.parametrize("debug", [False, True])
def test_a_fhir_search_past_the_limit_is_an_outcome_413(issue_token, settings, debug):
    settings.DEBUG = debug
    token = issue_token("patient:read")
    response = _client().post(
        "/fhir/Patient/_search",
        "name=" + "x" * chunked_body_limit(),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"].startswith(FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["diagnostics"] == _detail()


@pytest.mark.parametrize("debug", [False, True])
def test_an_inference_call_past_the_limit_is_a_json_413(issue_token, settings, debug):
    """Answered by the core handler: the inference views have no copy of their own."""
    settings.DEBUG = debug
    raw = json.dumps({"inputs": ["診" * 20_000] * 64}, ensure_ascii=False).encode()
    assert len(raw) > chunked_body_limit()
    response = _client().post(
        "/api/v1/inference/clinical-embeddings/embed",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}",
    )
    _assert_json_413(response)


def test_the_detail_names_the_configured_limit(issue_token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = issue_token("patient:read", "patient:write")
    response = _client().post(
        "/api/v1/patients/",
        _too_large_json(1000),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "The request body is larger than 1000 bytes."


def test_a_body_within_the_limit_is_still_read(issue_token):
    token = issue_token("patient:read", "patient:write")
    response = _client().post(
        "/api/v1/patients/", b'{"mrn": ""}', content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_an_admin_page_keeps_djangos_400(settings):
    settings.DEBUG = False
    response = _client().post(
        "/admin/login/", "username=" + "x" * chunked_body_limit(), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(("path", "status"), [("/api/v1/patients/", 413), ("/fhir/Patient", 413), ("/admin/", 400)])
def test_a_body_read_outside_an_api_view_is_answered_the_same(rf, path, status):
    """Django's 400 handler, for a body read before any API view (by a middleware): the same 413 on the APIs."""
    from django.core.exceptions import RequestDataTooBig

    from apps.core.errors import bad_request

    response = bad_request(
        rf.post(path), RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    )
    assert response.status_code == status
    if path.startswith("/api/"):
        assert json.loads(response.content) == {"detail": _detail(), "code": "request_too_large"}
    elif path.startswith("/fhir/"):
        assert json.loads(response.content)["issue"][0]["diagnostics"] == _detail()
