"""`Observation/<id>`, `Encounter/<id>` and `MedicationRequest/<id>`: a search's fullUrl and an Observation's
encounter reference answered 404 (the catch-all). They are reads now: scope clinical:read, audited naming
the row's patient (an unknown id naming none), 410 once the patient is deleted, as Patient/<id> is."""

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.medicationrequest import MedicationRequest as FhirMedicationRequest
from fhir.resources.R4B.observation import Observation as FhirObservation
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clinical.models import Encounter, MedicationRequest
from apps.clinical.services import patient_soft_delete

pytestmark = pytest.mark.django_db
MODELS = {"Observation": FhirObservation, "Encounter": FhirEncounter, "MedicationRequest": FhirMedicationRequest}


@pytest.fixture
def chart(patient, vitals):
    start = datetime.now(UTC) - timedelta(days=2)
    stay = Encounter.objects.create(patient=patient, encounter_class="IMP", status="in-progress", period_start=start)
    vitals[0].encounter = stay
    vitals[0].save(update_fields=["encounter"])
    MedicationRequest.objects.create(
        patient=patient, encounter=stay, rxnorm_code="197361", display="Amlodipine 5 MG", authored_at=start
    )
    return stay


def _new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq")[before:])


@pytest.mark.parametrize("resource_type", ["Observation", "Encounter", "MedicationRequest"])
def test_every_full_url_of_a_search_resolves_to_its_resource(clinician, patient, chart, resource_type):
    bundle = clinician.get(f"/fhir/{resource_type}?patient={patient.pk}").json()
    assert bundle["entry"]
    for entry in bundle["entry"]:
        before = AuditEvent.objects.count()
        response = clinician.get(entry["fullUrl"].replace("http://testserver", ""))
        assert response.status_code == 200, response.content[:300]
        assert response.json() == entry["resource"]
        MODELS[resource_type].model_validate(response.json())
        [event] = _new_events(before)
        assert (event.action, event.resource_type, event.resource_id, event.patient_id) == (
            "read", resource_type, entry["resource"]["id"], patient.pk
        )  # fmt: skip


def test_an_observations_encounter_reference_resolves(clinician, patient, chart, vitals):
    observation = clinician.get(f"/fhir/Observation/{vitals[0].pk}").json()
    reference = observation["encounter"]["reference"]
    assert reference == f"Encounter/{chart.pk}"
    assert clinician.get(f"/fhir/{reference}").json()["id"] == str(chart.pk)
    assert clinician.get(f"/fhir/{reference}/").status_code == 200  # as Patient/<id>/


def test_unknown_deleted_and_unscoped_reads(clinician, issue_token, patient, chart, vitals):
    before = AuditEvent.objects.count()
    missing = clinician.get("/fhir/Observation/987654321")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert clinician.get("/fhir/Encounter/007").status_code == 404
    events = _new_events(before)
    assert [(e.action, e.outcome, e.resource_id, e.patient_id) for e in events] == [
        ("read", "not_found", "987654321", None), ("read", "not_found", "", None)
    ]  # fmt: skip

    demographics_only = issue_token("patient:read", name="registration-desk")
    before = AuditEvent.objects.count()
    desk = APIClient()  # `api` carries the clinician's credentials, which would win over a header given here
    refused = desk.get(f"/fhir/Observation/{vitals[0].pk}", HTTP_AUTHORIZATION=f"Bearer {demographics_only}")
    assert refused.status_code == 403
    [event] = _new_events(before)
    assert (event.outcome, event.resource_id) == ("denied", str(vitals[0].pk))

    patient_soft_delete(patient=patient)
    for path in (f"Observation/{vitals[0].pk}", f"Encounter/{chart.pk}"):
        before = AuditEvent.objects.count()
        gone = clinician.get(f"/fhir/{path}")
        assert gone.status_code == 410 and gone.json()["resourceType"] == "OperationOutcome"
        [event] = _new_events(before)  # naming the deleted patient: their access report shows the attempt
        assert (event.outcome, event.resource_id, event.patient_id) == ("not_found", path.split("/")[1], patient.pk)


def test_the_capability_statement_lists_the_reads(clinician):
    statement = clinician.get("/fhir/metadata").json()
    for resource in statement["rest"][0]["resource"]:
        assert {"code": "read"} in resource["interaction"], resource["type"]
