"""FHIR JSON has no empty arrays, objects or strings ("the property should not be present if it has no
values"): a searchset that matched nothing, and every count-only one, carried `"entry": []`, which the HL7
validator rejects (fhir.resources' models let it pass, so the check here is on the JSON itself)."""

import pytest
from fhir.resources.R4B.bundle import Bundle

pytestmark = pytest.mark.django_db


def _empties(value, path="$") -> list[str]:
    """Where in a JSON document an array, object or string is empty."""
    if value in ([], {}, ""):
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _empties(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _empties(item, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize(
    "query",
    [
        "Patient?family=Nobody",
        "Patient?_summary=count",
        "Patient?family=Nobody&_count=0",
        "Observation?patient={pk}&code=8310-5&date=lt1990",
        "Observation?patient={pk}&_summary=count",
        "Encounter?patient={pk}",
        "MedicationRequest?patient={pk}",
        "Observation?patient=999999",
    ],
)
def test_a_bundle_without_matches_has_no_entry_array(clinician, patient, vitals, query):
    response = clinician.get("/fhir/" + query.format(pk=patient.pk))
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert "entry" not in body, body
    assert _empties(body) == []
    Bundle.model_validate(body)


def test_a_posted_search_without_matches_has_no_entry_array(clinician, patient):
    response = clinician.post(
        "/fhir/Patient/_search", "family=Nobody", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.content[:300]
    assert "entry" not in response.json() and _empties(response.json()) == []


@pytest.mark.parametrize("query", ["Patient?family=M", "Observation?patient={pk}&_count=3"])
def test_a_bundle_with_matches_lists_them_and_nothing_empty(clinician, patient, vitals, query):
    body = clinician.get("/fhir/" + query.format(pk=patient.pk)).json()
    assert body["entry"] and _empties(body) == []
    Bundle.model_validate(body)
