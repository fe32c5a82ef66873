"""A vital sign posted for a patient whose cached card still shows them while the row is already deleted (a delete
from another process whose invalidation has not arrived yet; here a direct UPDATE, which sends none) was a 404 with
no audit record: the write's own lookup raised Django's Http404 past the view's audit. It is recorded as the
not-found it is, like every other 404 of a patient."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Observation, Patient

pytestmark = pytest.mark.django_db


def test_a_write_to_a_patient_deleted_behind_the_cache_is_audited_and_stores_nothing(clinician, patient):
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").status_code == 200  # the card is cached
    Patient.objects.filter(pk=patient.pk).update(is_deleted=True)
    before = AuditEvent.objects.count()
    at = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    response = clinician.post(
        f"/api/v1/patients/{patient.pk}/vitals/", {"code": "8867-4", "value": 72, "effective_at": at}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.resource_type, e.outcome) for e in events] == [("read", "Patient", "not_found")]
    assert not Observation.objects.filter(patient=patient).exists()
