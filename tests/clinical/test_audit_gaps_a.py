"""Two refusals that left no audit record though README says any other 4xx naming its patient in the URL is
recorded: a 415 on `POST /fhir/Observation/_search?patient=5` with a JSON body (the same search with `date=bad`
was recorded), and `GET /fhir/Patient/5/` (the catch-all's 404)."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq")[before:])


def test_a_415_on_a_posted_search_is_recorded_naming_its_patient(clinician, patient):
    before = AuditEvent.objects.count()
    url = f"/fhir/Observation/_search?patient={patient.pk}"
    response = clinician.post(url, {"code": "8867-4"}, format="json")
    assert response.status_code == 415, response.content[:300]
    assert response.json()["resourceType"] == "OperationOutcome"
    [event] = _new_events(before)
    assert (event.action, event.outcome, event.patient_id) == ("search", "error", patient.pk)
    # As the same search's 400 is.
    before = AuditEvent.objects.count()
    bad = clinician.post(url, "date=bad", content_type="application/x-www-form-urlencoded")
    assert bad.status_code == 400
    [event] = _new_events(before)
    assert (event.action, event.outcome, event.patient_id) == ("search", "error", patient.pk)


def test_a_read_with_a_trailing_slash_is_the_read_and_recorded(clinician, patient):
    plain = clinician.get(f"/fhir/Patient/{patient.pk}")
    before = AuditEvent.objects.count()
    slashed = clinician.get(f"/fhir/Patient/{patient.pk}/")
    assert slashed.status_code == 200 and slashed.json() == plain.json()
    [event] = _new_events(before)
    assert (event.action, event.patient_id) == ("read", patient.pk)
    before = AuditEvent.objects.count()
    assert clinician.get("/fhir/Patient/987654/").status_code == 404
    [event] = _new_events(before)
    assert (event.action, event.outcome, event.resource_id) == ("read", "not_found", "987654")
