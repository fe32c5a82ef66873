"""FHIR's `fhirVersion` mime-type parameter: `Accept: application/fhir+json; fhirVersion=3.0` was answered in R4,
which a STU3 client cannot read. FHIR has a server answer 406 for a version it does not write: an
OperationOutcome now; 4.0 and 4.0.1 (R4) are answered as before, and non-FHIR endpoints ignore the parameter."""

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

pytestmark = pytest.mark.django_db


def _paths(patient) -> list[tuple[str, type]]:
    return [
        (f"/fhir/Patient/{patient.pk}", FhirPatient),
        (f"/fhir/Patient?_id={patient.pk}", Bundle),
        (f"/fhir/Observation?patient={patient.pk}", Bundle),
        ("/fhir/metadata", CapabilityStatement),
    ]


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+json;fhirVersion=1.0",
        'application/fhir+json; fhirVersion="3.0"',
        "application/fhir+json; FHIRVERSION=5.0",
        "application/json; fhirVersion=3.0",
        "application/fhir+json; fhirVersion=3.0, application/json; fhirVersion=4.3",
        "application/fhir+json; fhirVersion=4",
    ],
)
def test_another_fhir_version_is_a_406_operation_outcome(clinician, patient, accept):
    for path, _ in _paths(patient):
        for extra in ("", "_format=json", "_format=application/json"):
            url = f"{path}{'&' if '?' in path else '?'}{extra}" if extra else path
            response = clinician.get(url, HTTP_ACCEPT=accept)
            assert response.status_code == 406, (url, accept, response.content[:300])
            # In FHIR's type, or in the one `_format` named.
            assert response["Content-Type"].split(";")[0] in ("application/fhir+json", extra.partition("=")[2])
            outcome = OperationOutcome.model_validate(response.json())
            assert "4.0.1" in outcome.issue[0].diagnostics


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=4.0.1",
        "application/json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=3.0;q=0.9, */*;q=0.1",  # another range the server can answer
        "application/fhir+json",
    ],
)
def test_r4_is_answered(clinician, patient, accept):
    for path, model in _paths(patient):
        response = clinician.get(path, HTTP_ACCEPT=accept)
        assert response.status_code == 200, (path, accept, response.content[:300])
        model.model_validate(response.json())


def test_other_endpoints_ignore_the_parameter(clinician, patient):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT="application/json; fhirVersion=3.0")
    assert response.status_code == 200, response.content[:300]
