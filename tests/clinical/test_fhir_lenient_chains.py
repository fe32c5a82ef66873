"""A lenient search (`Prefer: handling=lenient`) leaves out only parameters the resource does not know. A
chain on a known reference (`patient.identifier=...`) was left out as unknown, so the search ran without
its patient and answered every patient's observations."""

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

pytestmark = pytest.mark.django_db

LENIENT = {"HTTP_PREFER": "handling=lenient"}


@pytest.mark.parametrize(
    ("resource_type", "chain"),
    [
        ("Observation", "patient.identifier"),
        ("Observation", "patient.name"),
        ("Encounter", "patient.identifier"),
        ("MedicationRequest", "patient.birthdate"),
    ],
)
def test_a_lenient_search_refuses_a_chain_on_a_known_reference(clinician, loaded, resource_type, chain):
    query = {chain: "http://hospital.example.org/mrn|X", "_count": 5}
    response = clinician.get(f"/fhir/{resource_type}", query, **LENIENT)
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == [chain]


def test_a_lenient_search_still_leaves_out_an_unknown_parameter_with_a_dot(clinician, patient):
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "flavour.sweet": "yes"}, **LENIENT)
    assert response.status_code == 200, response.content[:300]
