"""Two refusals the trail read differently from their neighbours. A POST lookup naming its patient in the body and
refused for its Accept (406) left no record, though the same request's `?format=xml` 400 leaves one: the 406 is
recorded whoever the request names, as the unknown format is. And an anonymous OPTIONS on a patient's URL, a 401,
was recorded as a `read` of that patient, though OPTIONS asks for no data (a signed-in caller's leaves none)."""

from __future__ import annotations

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

FIELDS = ("action", "resource_type", "outcome", "patient_id")


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-J406-0001", family_name="Ibsen", given_name="Ana", birth_date=date(1975, 6, 7), sex="female"
    )


def _records(before: int) -> list[tuple]:
    return [tuple(getattr(e, f) for f in FIELDS) for e in AuditEvent.objects.order_by("seq")[before:]]


def test_a_post_lookup_refused_for_its_accept_is_recorded_as_its_unknown_format_is(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', name='ward-j')}")
    before = AuditEvent.objects.count()
    by_format = api.post("/api/v1/patients/lookup/?format=xml", {"mrn": patient.mrn}, format="json")
    assert by_format.status_code == 400
    by_accept = api.post("/api/v1/patients/lookup/", {"mrn": patient.mrn}, format="json", HTTP_ACCEPT="application/xml")
    assert by_accept.status_code == 406
    records = _records(before)
    assert len(records) == 2 and records[0] == records[1]
    assert records[0][:3] == ("search", "Patient", "error")
    assert patient.mrn not in str(AuditEvent.objects.order_by("-seq").values().first())


@pytest.mark.parametrize("accept", ["application/json", "application/xml"])
def test_an_anonymous_options_on_a_patient_is_not_recorded_as_a_read(api, patient, accept):
    before = AuditEvent.objects.count()
    response = api.options(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT=accept)
    assert response.status_code == 401
    assert _records(before) == []
    # A GET of the same URL still is (once per address and view in its window).
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 401
    assert _records(before) == [("read", "Patient", "denied", patient.pk)]
