"""A refusal on a patient URL whose id is spelt another way (`032`, `abc`, `-1`, 70 digits) left no record: the
catch-all kept a refusal only when the id parsed, though the same URL's 404 and 403 were recorded. It is now kept
whenever the URL carries a patient id, naming no one."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _only_record(before: int) -> AuditEvent:
    [event] = AuditEvent.objects.order_by("seq")[before:]
    return event


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/patients/0{id}/", {"bogus": "1"}),
        ("/api/v1/patients/0{id}/encounters/", {"status": "bogus"}),
        ("/fhir/Patient/0{id}", {"_format": "xml"}),
        ("/fhir/Patient/abc", {"bogus": "1"}),
        ("/fhir/Patient/-1", {"_format": "xml"}),
        ("/fhir/Patient/" + "1" * 70, {"bogus": "1"}),
    ],
)
def test_a_refusal_on_another_spelling_is_recorded_naming_no_one(clinician, patient, path, query):
    before = AuditEvent.objects.count()
    response = clinician.get(path.format(id=patient.pk), query)
    assert response.status_code == 400, response.content[:300]
    event = _only_record(before)
    assert (event.outcome, event.patient_id, event.patient_ids, event.resource_id) == ("error", None, None, "")


def test_the_written_spelling_still_names_its_patient(clinician, patient):
    before = AuditEvent.objects.count()
    assert clinician.get(f"/fhir/Patient/{patient.pk}", {"bogus": "1"}).status_code == 400
    assert _only_record(before).patient_id == patient.pk
