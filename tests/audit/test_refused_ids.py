"""A refused request is recorded against the patient its URL names, and only that one."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


def test_a_refused_fhir_read_of_a_leading_zero_id_names_no_patient(api, issue_token):
    """`Patient/01` names no resource (a 404 when allowed); refused, its record named patient 1, a patient the
    request never asked for, in the trail a privacy officer reads."""
    from datetime import date

    patient = patient_create(mrn="MRN-1", family_name="A", given_name="B", birth_date=date(1970, 1, 1), sex="female")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='labs-only')}")
    for raw_id, named in ((f"0{patient.pk}", None), (str(patient.pk), patient.pk)):
        before = AuditEvent.objects.count()
        assert api.get(f"/fhir/Patient/{raw_id}").status_code == 403
        [event] = AuditEvent.objects.order_by("seq")[before:]
        assert (event.outcome, event.patient_id) == ("denied", named)
