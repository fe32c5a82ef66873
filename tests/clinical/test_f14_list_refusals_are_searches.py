"""A refused REST list GET was recorded as a `read` (with no resource), while the same list's successes and a bad
cursor are `search`es: `?action=search` missed them. A list's refusal is now a search; a refused POST of
readings is still a create."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _only_record(before: int) -> AuditEvent:
    [event] = AuditEvent.objects.order_by("seq")[before:]
    return event


@pytest.mark.parametrize(
    ("suffix", "query"),
    [
        ("encounters/", {"status": "bogus"}),
        ("vitals/", {"since": "2026-01-01T08:00:00"}),  # naive
        ("medications/", {"status": "bogus"}),
    ],
)
def test_a_refused_list_is_a_search(clinician, patient, suffix, query):
    before = AuditEvent.objects.count()
    assert clinician.get(f"/api/v1/patients/{patient.pk}/{suffix}", query).status_code == 400
    event = _only_record(before)
    assert (event.action, event.outcome, event.patient_id, event.resource_id) == ("search", "error", patient.pk, "")


def test_a_refused_post_of_a_reading_is_still_a_create(clinician, patient):
    before = AuditEvent.objects.count()
    body = {"code": "8867-4", "value": "x", "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}
    assert clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, format="json").status_code == 400
    assert _only_record(before).action == "create"
