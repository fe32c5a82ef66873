"""The README: "give those you use, each with a value (an empty one is a 400)". A FHIR search took an empty
`_cursor` as no cursor (the first page, 200) and a blank token (`MedicationRequest?code=%20`) as a code to look for
(nothing found, 200). Every FHIR search parameter with an empty or blank value is a 400 OperationOutcome naming it,
before anything is read."""

import pytest

pytestmark = pytest.mark.django_db

CASES = [
    ("Patient", "_cursor", ""),
    ("Patient", "_cursor", " "),
    ("Observation", "_cursor", ""),
    ("Encounter", "_cursor", ""),
    ("MedicationRequest", "_cursor", ""),
    ("MedicationRequest", "code", " "),
    ("Observation", "code", " "),
]


@pytest.mark.parametrize(("resource", "name", "value"), CASES)
def test_an_empty_or_blank_fhir_parameter_is_a_400(clinician, patient, resource, name, value):
    query = {name: value} if resource == "Patient" else {"patient": str(patient.pk), name: value}
    response = clinician.get(f"/fhir/{resource}", query)
    assert response.status_code == 400, response.content[:300]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert name in outcome["issue"][0]["expression"][0] or name in outcome["issue"][0]["diagnostics"]


def test_a_posted_search_with_an_empty_cursor_is_a_400(clinician, patient):
    body, form = "_cursor=", "application/x-www-form-urlencoded"
    response = clinician.generic("POST", "/fhir/Patient/_search", body, content_type=form)
    assert response.status_code == 400, response.content[:300]
