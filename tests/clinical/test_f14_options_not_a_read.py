"""`OPTIONS /fhir/Patient/<id>` (405) was recorded as a `read` of that patient, a read that never happened in their
history. OPTIONS asks for no data and no action of the trail says what it is: it leaves no refusal record."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/fhir/Patient/{id}", "/fhir/Patient", "/api/v1/patients/{id}/"])
def test_options_leaves_no_record(clinician, patient, path):
    before = AuditEvent.objects.count()
    response = clinician.options(path.format(id=patient.pk))
    assert response.status_code in (200, 405)
    assert AuditEvent.objects.count() == before


def test_options_without_the_scope_leaves_no_record(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='no-patient-read')}")
    before = AuditEvent.objects.count()
    api.options(f"/fhir/Patient/{patient.pk}")
    assert AuditEvent.objects.count() == before
