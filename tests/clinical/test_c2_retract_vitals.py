"""PATCH /api/v1/patients/<id>/vitals/<id>/ retracts one reading (status entered-in-error): there was no way to take
back a reading recorded in error through the API (no route: 404/405). The retraction is audited as a write,
invalidates the patient's cached reads when it commits, answers a repeat unchanged, refuses a cancelled reading
(409) and any other change (400 on the field)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Observation
from apps.clinical.services import observation_record, patient_create

pytestmark = pytest.mark.django_db

RETRACT = {"status": "entered-in-error"}


def _url(observation: Observation) -> str:
    return f"/api/v1/patients/{observation.patient_id}/vitals/{observation.pk}/"


@pytest.fixture
def reading(patient) -> Observation:
    at = datetime.now(UTC) - timedelta(hours=1)
    return observation_record(patient=patient, code="8867-4", value=180, effective_at=at)


def test_a_retraction_is_recorded_audited_and_leaves_the_cached_reads(
    clinician, patient, reading, django_capture_on_commit_callbacks
):
    vitals = f"/api/v1/patients/{patient.pk}/vitals/"
    assert [row["id"] for row in clinician.get(vitals, {"latest": "true"}).json()["results"]] == [reading.pk]
    with django_capture_on_commit_callbacks(execute=True) as committed:
        response = clinician.patch(_url(reading), RETRACT, format="json")
    assert committed  # the cache's invalidation is published when the retraction commits
    assert response.status_code == 200, response.content[:300]
    assert (response.json()["id"], response.json()["status"]) == (reading.pk, "entered-in-error")
    reading.refresh_from_db()
    assert reading.status == "entered-in-error"
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.outcome, record.resource_type) == ("update", "success", "Observation")
    assert (record.resource_id, record.patient_id) == (str(reading.pk), patient.pk)
    assert clinician.get(vitals, {"latest": "true"}).json()["results"] == []  # the cached answer is gone


def test_a_second_retraction_answers_the_reading_unchanged(clinician, reading):
    first = clinician.patch(_url(reading), RETRACT, format="json")
    second = clinician.patch(_url(reading), RETRACT, format="json")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()


def test_a_cancelled_reading_is_a_409_and_stays_cancelled(clinician, patient):
    at = datetime.now(UTC) - timedelta(hours=1)
    cancelled = observation_record(patient=patient, code="8867-4", value=80, effective_at=at, status="cancelled")
    response = clinician.patch(_url(cancelled), RETRACT, format="json")
    assert response.status_code == 409, response.content[:300]
    assert response.json()["code"] == "conflict"
    cancelled.refresh_from_db()
    assert cancelled.status == "cancelled"
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.outcome, record.resource_id) == ("update", "error", str(cancelled.pk))


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"status": "final"}, {"status"}),
        ({"status": "cancelled"}, {"status"}),
        ({**RETRACT, "value": 90}, {"value"}),
        ({"value": 90, "code": "8310-5"}, {"value", "code"}),
        ({}, {"status"}),
    ],
)
def test_anything_but_the_retraction_is_a_400_on_its_fields(clinician, reading, body, fields):
    response = clinician.patch(_url(reading), body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert fields <= set(response.json()["errors"])
    reading.refresh_from_db()
    assert (reading.status, reading.value) == ("final", 180)


def test_another_patients_reading_or_a_missing_one_is_a_404(clinician, reading):
    other = patient_create(mrn="MRN-OTHER", family_name="Ng", given_name="Al", birth_date=date(1970, 1, 1))
    for url in (
        f"/api/v1/patients/{other.pk}/vitals/{reading.pk}/",
        f"/api/v1/patients/{reading.patient_id}/vitals/{reading.pk + 1000}/",
        f"/api/v1/patients/{reading.patient_id}/vitals/0{reading.pk}/",
        f"/api/v1/patients/{other.pk + 1000}/vitals/{reading.pk}/",
    ):
        response = clinician.patch(url, RETRACT, format="json")
        assert response.status_code == 404, (url, response.content[:300])
    reading.refresh_from_db()
    assert reading.status == "final"


def test_a_retraction_needs_the_clinical_write_scope(api, issue_token, reading):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', 'patient:read')}")
    response = api.patch(_url(reading), RETRACT, format="json")
    assert response.status_code == 403, response.content[:300]
    reading.refresh_from_db()
    assert reading.status == "final"
    record = AuditEvent.objects.order_by("-id").first()
    assert (record.action, record.outcome) == ("update", "denied")
