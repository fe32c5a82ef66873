"""A FHIR read of an id no resource can have (`Patient/01`, `Patient/0`) is an access attempt like a read of an
id no patient has: both answer 404 and both leave a record. The malformed one left none, while the same
request refused (403) was recorded, so ids probed with a leading zero went unseen in the trail."""

from __future__ import annotations

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', name='ward-app')}")
    return api


@pytest.mark.parametrize("raw_id", ["0{pk}", "0", "00", "{big}"])
def test_a_read_of_an_id_no_resource_can_have_is_recorded_and_names_no_patient(reader, raw_id):
    patient = patient_create(mrn="MRN-1", family_name="A", given_name="B", birth_date=date(1970, 1, 1), sex="female")
    raw_id = raw_id.format(pk=patient.pk, big="9" * 30)
    before = AuditEvent.objects.count()
    response = reader.get(f"/fhir/Patient/{raw_id}")
    assert response.status_code == 404, response.content[:300]
    assert response.json()["resourceType"] == "OperationOutcome"
    [event] = AuditEvent.objects.order_by("seq")[before:]
    assert (event.action, event.resource_type, event.outcome) == ("read", "Patient", "not_found")
    assert (event.patient_id, event.patient_ids, event.resource_id) == (None, None, "")


def test_a_read_of_an_unknown_well_formed_id_is_recorded_as_before(reader, db):
    before = AuditEvent.objects.count()
    assert reader.get("/fhir/Patient/987654").status_code == 404
    [event] = AuditEvent.objects.order_by("seq")[before:]
    assert (event.outcome, event.resource_id, event.patient_id) == ("not_found", "987654", None)
