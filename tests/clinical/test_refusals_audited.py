"""Refused PHI requests leave a record too: a throttled or malformed attempt, a duplicate MRN (which
answers "this MRN exists"), an error after the patient was found; and reading the audit trail is itself
recorded. Otherwise an existing patient and a missing one would be told apart without a trace."""

from __future__ import annotations

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache

pytestmark = pytest.mark.django_db


def _new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq")[before:])


def test_a_throttled_or_malformed_attempt_is_recorded(clinician, patient, monkeypatch):
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test
    RateLimitPolicy.objects.filter(scope="patient_data").update(requests=2, burst_per_second=None)
    policy_cache._bump()  # what the on-commit hook does once an edit commits
    for _ in range(2):
        assert clinician.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
    before = AuditEvent.objects.count()
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").status_code == 429
    assert clinician.get(f"/fhir/Patient/{patient.pk}").status_code == 429
    for _ in range(5):  # a client hammering past its limit: recorded once per view and 10 s, not per request
        assert clinician.get(f"/api/v1/patients/{patient.pk}/").status_code == 429
    events = _new_events(before)
    assert [(e.outcome, e.patient_id) for e in events] == [("denied", patient.pk), ("denied", patient.pk)]

    before = AuditEvent.objects.count()
    response = clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", HTTP_X_PURPOSE_OF_USE="SNOOP")
    assert response.status_code == 400
    [event] = _new_events(before)
    assert (event.outcome, event.patient_id, event.purpose_of_use) == ("error", patient.pk, "INVALID")


def test_a_duplicate_mrn_is_recorded_like_a_lookup(clinician, patient):
    before = AuditEvent.objects.count()
    body = {"mrn": patient.mrn, "family_name": "X", "given_name": "Y", "birth_date": "1990-01-01"}
    assert clinician.post("/api/v1/patients/", body, format="json").status_code == 400
    [event] = _new_events(before)
    assert (event.action, event.outcome, event.patient_id) == ("create", "error", patient.pk)  # as a lookup
    assert event.query_digest and patient.mrn not in event.query_digest  # keyed digest, never the MRN


def test_a_malformed_body_answers_alike_for_any_patient(clinician, patient):
    """Parsed and checked before the patient is looked up: no answer tells an existing patient apart."""
    for body, content_type in (("{not json", "application/json"), ("x", "text/plain")):
        answers = [clinician.generic("POST", f"/api/v1/patients/{patient_id}/vitals/", body, content_type=content_type)
                   for patient_id in (patient.pk, 999_999)]  # fmt: skip
        assert answers[0].status_code in (400, 415)
        assert (answers[0].status_code, answers[0].content) == (answers[1].status_code, answers[1].content)


def test_errors_after_the_patient_was_found_are_recorded(clinician, patient):
    before = AuditEvent.objects.count()
    bad_encounter = {"code": "8867-4", "value": 64, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z",
                     "encounter_id": 987654}  # fmt: skip
    assert clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", bad_encounter, format="json").status_code == 400
    assert clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {"cursor": "zzz"}).status_code == 400
    events = _new_events(before)
    assert [(e.action, e.outcome, e.patient_id) for e in events] == [
        ("create", "error", patient.pk), ("search", "error", patient.pk)
    ]  # fmt: skip


def test_a_refusal_inside_the_write_is_recorded_after_its_rollback(clinician, patient):
    """A value the service refuses (Django's ValidationError, raised inside the write's transaction): the
    observation is rolled back, its refusal record stays. A registration refused for anything but a taken MRN
    answers no question about a patient, and leaves no record."""
    before = AuditEvent.objects.count()
    too_fast = {"code": "8867-4", "value": 900, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}
    assert clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", too_fast, format="json").status_code == 400
    [event] = _new_events(before)
    assert (event.action, event.outcome, event.patient_id) == ("create", "error", patient.pk)
    assert not patient.observations.exists()
    unborn = {"mrn": "MRN-NEW-1", "family_name": "X", "given_name": "Y", "birth_date": "2999-01-01"}
    assert clinician.post("/api/v1/patients/", unborn, format="json").status_code == 400
    assert AuditEvent.objects.count() == before + 1


def test_reading_the_audit_trail_is_recorded(api, issue_token, patient):
    auditor = issue_token("audit:read", name="compliance")
    before = AuditEvent.objects.count()
    response = api.get("/api/v1/audit/", {"patient_id": patient.pk}, HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert response.status_code == 200
    [event] = _new_events(before)
    assert (event.resource_type, event.action, event.patient_id, event.actor_name) == (
        "AuditEvent", "search", patient.pk, "compliance"
    )  # fmt: skip
    reader = issue_token("patient:read")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {reader}").status_code == 403
    assert AuditEvent.objects.order_by("-seq").first().outcome == "denied"


def test_a_refused_fhir_search_is_recorded_as_a_search_of_its_patient(api, issue_token, patient):
    """A FHIR search names its patient in a parameter, not the path: the refusal keeps it all the same, and a
    POST _search is a search, not a create."""
    demographics_only = issue_token("patient:read", name="registration-desk")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {demographics_only}"}
    before = AuditEvent.objects.count()
    assert api.get("/fhir/Observation", {"patient": f"Patient/{patient.pk}"}, **auth).status_code == 403
    posted = api.post("/fhir/Encounter/_search", f"patient={patient.pk}",
                      content_type="application/x-www-form-urlencoded", **auth)  # fmt: skip
    assert posted.status_code == 403
    unreadable = api.post("/fhir/Encounter/_search", "{", content_type="application/json", **auth)
    assert unreadable.status_code == 403
    bad_purpose = api.get("/fhir/Patient", {"_id": patient.pk}, HTTP_X_PURPOSE_OF_USE="SNOOP", **auth)
    assert bad_purpose.status_code == 400
    events = _new_events(before)
    assert [(e.action, e.resource_type, e.patient_id, e.outcome) for e in events] == [
        ("search", "Observation", patient.pk, "denied"),
        ("search", "Encounter", patient.pk, "denied"),
        ("search", "Encounter", None, "denied"),
        ("search", "Patient", patient.pk, "error"),
    ]


def test_a_refused_search_of_several_patients_names_each_of_them(api, issue_token, patient):
    """`_id=1,2` asks for two patients: the refusal keeps both, as a search disclosing them would."""
    no_scope = issue_token("clinical:read", name="lab-feed")
    other = patient_create(mrn="MRN-OTHER-1", family_name="Roe", given_name="Jo", birth_date=date(1980, 1, 1)).pk
    unknown = max(patient.pk, other) + 1000  # no patient has it: named by no record (it may be registered later)
    response = api.get(
        "/fhir/Patient",
        {"_id": f"{patient.pk},Patient/{other},{unknown}"},
        HTTP_AUTHORIZATION=f"Bearer {no_scope}",
    )
    assert response.status_code == 403
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.patient_id) == ("search", "denied", None)
    assert event.patient_ids == sorted([patient.pk, other])


def test_a_refused_mrn_lookup_is_recorded_as_a_search(api, issue_token, patient):
    """The lookup is a POST so that the MRN stays out of URLs; refused, it is still a search, not a create."""
    clinical_only = issue_token("clinical:read", name="lab-feed")
    before = AuditEvent.objects.count()
    response = api.post("/api/v1/patients/lookup/", {"mrn": patient.mrn}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {clinical_only}")  # fmt: skip
    assert response.status_code == 403
    [event] = _new_events(before)
    assert (event.action, event.resource_type, event.outcome) == ("search", "Patient", "denied")
