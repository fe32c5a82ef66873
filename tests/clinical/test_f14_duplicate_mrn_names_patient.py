"""Registering a patient under an MRN another patient has is refused 400, which answers "this MRN exists" as a
lookup does; its record named no patient, so that patient's history (`?patient_id=`) missed it. It names them."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_a_duplicate_mrn_names_the_patient_who_has_it(clinician, patient):
    before = AuditEvent.objects.count()
    body = {"mrn": patient.mrn, "family_name": "X", "given_name": "Y", "birth_date": "1990-01-01"}
    assert clinician.post("/api/v1/patients/", body, format="json").status_code == 400
    [event] = AuditEvent.objects.order_by("seq")[before:]
    assert (event.action, event.outcome, event.patient_id) == ("create", "error", patient.pk)
    assert event.query_digest and patient.mrn not in event.query_digest


def test_a_new_mrn_refused_otherwise_names_no_one(clinician, patient):
    before = AuditEvent.objects.count()
    body = {"mrn": "MRN-777777", "family_name": "X", "given_name": "Y", "birth_date": "not a date"}
    assert clinician.post("/api/v1/patients/", body, format="json").status_code == 400
    assert all(e.patient_id is None for e in AuditEvent.objects.order_by("seq")[before:])
