"""Every 4xx refusal of a request naming its patient (or of a FHIR search) leaves one record, wherever it is
raised: validation before the patient lookup, a retract's body, a list's filter, a FHIR parameter, a reused
Idempotency-Key, another client's posted search key. These left none, while `"value": 900`, `?format=xml` and
a bad X-Purpose-Of-Use on the same patient did: the records told the requests apart."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

VITAL = {"code": "8867-4", "value": 72, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}


def _new_events(before: int) -> list[tuple]:
    return [(e.action, e.resource_type, e.outcome, e.patient_id) for e in AuditEvent.objects.order_by("seq")[before:]]


def _refusals(patient_pk: int) -> list[tuple[str, str, object, str, str]]:
    """(method, path, body or query, expected action, resource type) for each refusal the reviewer found."""
    base = f"/api/v1/patients/{patient_pk}"
    return [
        ("post", f"{base}/vitals/", {**VITAL, "value": "72"}, "create", "Observation"),
        ("get", f"{base}/vitals/", {"since": "2026-01-01T08:00:00"}, "search", "Observation"),
        ("get", f"{base}/encounters/", {"status": "bogus"}, "search", "Encounter"),
        ("get", "/fhir/Observation", {"patient": str(patient_pk), "date": "xx"}, "search", "Observation"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_a_refusal_naming_an_existing_patient_is_recorded_once(clinician, patient, case):
    method, path, data, action, resource_type = _refusals(patient.pk)[case]
    before = AuditEvent.objects.count()
    response = clinician.post(path, data, format="json") if method == "post" else clinician.get(path, data)
    assert response.status_code == 400, response.content[:300]
    assert _new_events(before) == [(action, resource_type, "error", patient.pk)]
    assert not patient.observations.exists()


def test_a_refused_retraction_is_recorded_as_an_update(clinician, patient, vitals):
    before = AuditEvent.objects.count()
    url = f"/api/v1/patients/{patient.pk}/vitals/{vitals[0].pk}/"
    response = clinician.patch(url, {"status": "final"}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert _new_events(before) == [("update", "Observation", "error", patient.pk)]
    vitals[0].refresh_from_db()
    assert vitals[0].status != "entered-in-error"


def test_a_reused_idempotency_key_is_recorded(clinician, patient):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    key = {"HTTP_IDEMPOTENCY_KEY": "f2-key-1"}
    assert clinician.post(url, VITAL, format="json", **key).status_code == 201
    before = AuditEvent.objects.count()
    response = clinician.post(url, {**VITAL, "value": 73}, format="json", **key)
    assert response.status_code == 422, response.content[:300]
    assert _new_events(before) == [("create", "Observation", "error", patient.pk)]
    assert patient.observations.count() == 1


def test_another_clients_posted_search_key_and_a_bad_cursor_are_recorded(clinician, issue_token, patient, vitals):
    body = urlencode({"patient": patient.pk, "_count": 1})
    first = clinician.post("/fhir/Observation/_search", body, content_type="application/x-www-form-urlencoded")
    assert first.status_code == 200, first.content[:300]
    next_url = next(link["url"] for link in first.json()["link"] if link["relation"] == "next")
    next_url = next_url.replace("http://testserver", "")
    other = issue_token("patient:read", "clinical:read", name="prober")
    before = AuditEvent.objects.count()
    probe = APIClient().get(next_url, HTTP_AUTHORIZATION=f"Bearer {other}")
    assert probe.status_code == 400, probe.content[:300]
    [event] = AuditEvent.objects.order_by("seq")[before:]
    assert (event.action, event.resource_type, event.outcome, event.patient_id, event.actor_name) == (
        "search", "Observation", "error", None, "prober"
    )  # fmt: skip
    before = AuditEvent.objects.count()
    tampered = clinician.get("/fhir/Observation", {"patient": patient.pk, "_cursor": "zzz"})
    assert tampered.status_code == 400, tampered.content[:300]
    assert _new_events(before) == [("search", "Observation", "error", patient.pk)]
    assert clinician.get(next_url).status_code == 200  # its own client still pages it


def test_an_already_audited_refusal_keeps_one_record(clinician, patient):
    """The paths audited before (a value the service refuses, a bad cursor, ?format=xml) get no second one."""
    before = AuditEvent.objects.count()
    base = f"/api/v1/patients/{patient.pk}"
    assert clinician.post(f"{base}/vitals/", {**VITAL, "value": 900}, format="json").status_code == 400
    assert clinician.get(f"{base}/encounters/", {"cursor": "zzz"}).status_code == 400
    assert clinician.get(f"{base}/", {"format": "xml"}).status_code == 400
    assert clinician.get(f"{base}/vitals/", HTTP_X_PURPOSE_OF_USE="SNOOP").status_code == 400
    assert [event[0] for event in _new_events(before)] == [
        "create",
        "search",
        "read",
        "search",
    ]  # a list's refusal is a search


def test_a_refusal_naming_no_patient_still_leaves_none(clinician, patient):
    """A registration refused for anything but a taken MRN, or a lookup with a malformed MRN, names no one."""
    before = AuditEvent.objects.count()
    unborn = {"mrn": "MRN-NEW-1", "family_name": "X", "given_name": "Y", "birth_date": "2999-01-01"}
    assert clinician.post("/api/v1/patients/", unborn, format="json").status_code == 400
    assert clinician.post("/api/v1/patients/lookup/", {"mrn": 123}, format="json").status_code == 400
    assert AuditEvent.objects.count() == before
