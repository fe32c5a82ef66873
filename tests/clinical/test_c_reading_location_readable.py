"""A reading's POST answers 201 with Location `/api/v1/patients/<id>/vitals/<id>/`, but a GET of that URL was a 405
(the route took PATCH alone): a client following Location, as HTTP has it, could not read what it had just created.
The GET answers the reading as the vitals list writes it, needs `clinical:read`, and is audited as a read naming the
patient; another patient's reading, or an unknown id, is a 404, audited naming no reading of someone else's."""

from datetime import UTC, date, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Observation
from apps.clinical.services import observation_record, patient_create

pytestmark = pytest.mark.django_db

READING = {"code": "8867-4", "value": 64, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}


def test_c_the_location_of_a_created_reading_answers_it(clinician, patient):
    created = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", READING, format="json")
    assert created.status_code == 201, created.content[:300]
    response = clinician.get(created["Location"].removeprefix("http://testserver"))
    assert response.status_code == 200, response.content[:300]
    assert response.json() == created.json()
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.outcome, record.resource_type) == ("read", "success", "Observation")
    assert (record.resource_id, record.patient_id) == (str(created.json()["id"]), patient.pk)


def test_c_a_retracted_reading_is_read_with_its_status(clinician, patient):
    at = datetime.now(UTC) - timedelta(hours=1)
    reading = observation_record(patient=patient, code="8867-4", value=180, effective_at=at)
    url = f"/api/v1/patients/{patient.pk}/vitals/{reading.pk}/"
    clinician.patch(url, {"status": "entered-in-error"}, format="json")
    response = clinician.get(url)
    assert response.status_code == 200, response.content[:300]
    assert (response.json()["id"], response.json()["status"]) == (reading.pk, "entered-in-error")


def test_c_another_patients_reading_or_an_unknown_one_is_a_404(clinician, patient):
    other = patient_create(mrn="MRN-LOC-OTHER", family_name="Roe", given_name="Kim", birth_date=date(1980, 1, 2))
    theirs = observation_record(patient=other, code="8867-4", value=70, effective_at=datetime.now(UTC))
    for reading_id in (theirs.pk, theirs.pk + 1000):
        response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/{reading_id}/")
        assert response.status_code == 404, response.content[:300]
        assert response.json()["code"] == "not_found"
        record = AuditEvent.objects.order_by("-id").first()
        assert (record.action, record.outcome, record.patient_id) == ("read", "not_found", patient.pk)


def test_a_lab_result_is_not_a_vital_sign_reading(clinician, patient):
    """The URL serves vital signs only, as its PATCH and the vitals list: a laboratory Observation's id is a 404."""
    lab = Observation.objects.create(
        patient=patient,
        category=Observation.Category.LABORATORY,
        code="2345-7",
        value=5.4,
        unit="mmol/L",
        status="final",
        effective_at=datetime.now(UTC),
    )
    url = f"/api/v1/patients/{patient.pk}/vitals/{lab.pk}/"
    response = clinician.get(url)
    assert response.status_code == 404, response.content[:300]
    assert response.json()["code"] == "not_found"
    assert clinician.patch(url, {"status": "entered-in-error"}, format="json").status_code == 404


def test_c_reading_one_needs_clinical_read(api, issue_token, patient):
    at = datetime.now(UTC) - timedelta(hours=1)
    reading = observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:write', name='writer-app')}")
    response = api.get(f"/api/v1/patients/{patient.pk}/vitals/{reading.pk}/")
    assert response.status_code == 403, response.content[:300]
    assert response.json()["code"] == "insufficient_scope"
