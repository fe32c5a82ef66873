"""Errors outside any view are answered in the API's own format: JSON under /api/, an OperationOutcome
under /fhir/, Django's pages elsewhere; never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"


def _json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize(
    "path",
    ["/api/v1/services/%00/", "/api/v1/services/a%00/", "/api/v1/services/?kind=%00",
     "/api/v1/metrics/series/?metric=rps&service=%00", "/api/v1/patients/1/vitals/?code=%00"],
)  # fmt: skip
def test_a_nul_in_an_api_url_is_a_json_400(staff_api, path):
    body = _json_error(staff_api.get(path), 400)
    assert body["code"] == "invalid" and "NUL" in body["detail"]


def test_a_nul_elsewhere_is_a_plain_400(client):
    response = client.get("/dashboard/%00")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "path", ["/api/v1/nope/", "/api/v1/patients/99999999999999999999/", "/api/v1/patients/-1/", "/api/v1/x"]
)
def test_an_unknown_api_path_is_a_json_404(api, path):
    assert _json_error(api.get(path), 404)["code"] == "not_found"


def test_an_unknown_fhir_path_is_an_outcome_and_other_paths_keep_djangos_page(api, client):
    response = api.get("/fhir/Patient/1/_history/2/extra")
    assert response.status_code == 404 and response["Content-Type"].startswith(FHIR_JSON)
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_an_api_write_without_its_trailing_slash_names_the_right_path(api):
    body = _json_error(api.post("/api/v1/patients/lookup", {"mrn": "MRN-1"}, format="json"), 404)
    assert "/api/v1/patients/lookup/" in body["detail"]
    assert api.get("/api/v1/services")["Location"] == "/api/v1/services/"  # reads still redirect


def test_a_body_over_the_limits_is_refused_in_the_apis_format(api, issue_token, settings):
    """Too long a body is a 413 naming the byte limit (as a chunked one is); too many fields a 400."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'clinical:read')}")
    body = _json_error(api.post("/api/v1/patients/lookup/", {"mrn": "M" * 2000}, format="json"), 413)
    assert body == {"detail": "The request body is larger than 1000 bytes.", "code": "request_too_large"}
    form = "&".join(f"name{i}=x" for i in range(10))
    response = api.post("/fhir/Patient/_search", form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response["Content-Type"].startswith(FHIR_JSON)
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["issue"][0]["diagnostics"]


def test_json_nested_past_the_recursion_limit_is_a_400(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    deep = '{"mrn": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/api/v1/patients/lookup/", deep, content_type="application/json")
    body = _json_error(response, 400)
    assert body["code"] == "parse_error" and "nested" in body["detail"]


@pytest.mark.parametrize("path", ["/api/v1/services/no-such-service/", "/api/v1/scaling/policies/999/manifests/"])
def test_a_missing_object_behind_a_known_route_is_a_404_with_its_code(staff_api, path):
    """get_object_or_404 raises Django's Http404: it gets the API's shape and code like DRF's NotFound."""
    assert _json_error(staff_api.get(path), 404)["code"] == "not_found"
