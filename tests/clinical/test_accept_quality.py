"""The Accept header's quality values count (RFC 9110, 12.5.1) on the FHIR and REST APIs: DRF's own
negotiation ignores them, so a type the client weighted 0 or lower than another was still chosen."""

import json

import pytest

pytestmark = pytest.mark.django_db

FHIR = "application/fhir+json"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (f"{FHIR};q=0, application/json", "application/json"),
        (f"application/json;q=0.9, {FHIR};q=0.5", "application/json"),
        (f"application/json;q=0.5, {FHIR};q=0.9", FHIR),
        (f"{FHIR}, application/json", FHIR),  # equal weights: the view's order, as before
        ("application/json, */*;q=0.1", "application/json"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", FHIR),  # a browser's
        ("application/json;q=0, */*", FHIR),  # the more specific range decides for application/json
        ("application/json;q=abc", "application/json"),  # an unreadable weight is no weight
    ],
)
def test_fhir_answers_in_the_type_the_client_weighted_highest(clinician, patient, accept, content_type):
    response = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].split(";")[0] == content_type


@pytest.mark.parametrize(
    "accept", ["*/*;q=0", f"{FHIR};q=0, application/json;q=0", "text/html", "application/*;q=0, */*"]
)
def test_fhir_refuses_when_nothing_offered_is_acceptable(clinician, patient, accept):
    response = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


def test_fhir_format_parameter_still_overrides_accept(clinician, patient):
    response = clinician.get(f"/fhir/Patient/{patient.pk}?_format=json", HTTP_ACCEPT="application/json;q=0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(FHIR)


def test_rest_refuses_json_weighted_zero_and_keeps_the_clients_indent(clinician, patient):
    assert clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT="application/json;q=0").status_code == 406
    response = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT="application/json; q=0.4; indent=2")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.content.decode().startswith("{\n  ")  # indent=2 reached the renderer
    assert json.loads(response.content)["id"] == patient.pk
