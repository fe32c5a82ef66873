"""DRF negotiates the response's type before it authenticates: on a PHI view an Accept nothing there answers was a
406 to anyone, with no credentials at all (no 401), and a signed-in caller's 406 naming a patient left no audit
record, though every other refusal after authentication naming a patient leaves one. PHI views now identify the
caller first: no credentials is a 401 whatever the Accept; a missing scope a 403; and the 406 of a caller allowed to
ask leaves one record, as the `?format=xml` refusal of the same request does."""

from __future__ import annotations

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache

pytestmark = pytest.mark.django_db

XML = "application/xml"
STU3 = "application/fhir+json; fhirVersion=3.0"
RECORD_FIELDS = ("actor_type", "actor_name", "action", "resource_type", "resource_id", "outcome", "patient_id")


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-B406-0001", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3), sex="female"
    )


@pytest.fixture
def clinician(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'clinical:read', name='ward-b')}")
    return api


def _urls(pk: int) -> list[str]:
    return [
        f"/api/v1/patients/{pk}/",
        f"/api/v1/patients/{pk}/vitals/",
        f"/fhir/Patient/{pk}",
        f"/fhir/Observation?patient={pk}",
        f"/fhir/Patient?_id={pk}",
    ]


def _records(before: int) -> list[tuple]:
    return [tuple(getattr(e, f) for f in RECORD_FIELDS) for e in AuditEvent.objects.order_by("seq")[before:]]


def _with(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("accept", [XML, "application/json;q=0, application/fhir+json;q=0", STU3])
@pytest.mark.parametrize("credentials", [{}, {"HTTP_AUTHORIZATION": "Bearer not-a-token"}])
def test_without_valid_credentials_it_is_a_401_whatever_the_accept(api, patient, case, accept, credentials):
    url = _urls(patient.pk)[case]
    response = api.get(url, HTTP_ACCEPT=accept, **credentials)
    assert response.status_code == 401, (url, response.content[:300])  # was 406
    body = response.json()
    if url.startswith("/fhir/"):
        assert body["resourceType"] == "OperationOutcome"
    else:
        assert body["code"] in ("not_authenticated", "invalid_token")


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("accept", [XML, STU3])
def test_a_406_naming_a_patient_is_recorded_as_other_refusals_are(clinician, patient, case, accept):
    url = _urls(patient.pk)[case]
    before = AuditEvent.objects.count()
    response = clinician.get(url, HTTP_ACCEPT=accept)
    assert response.status_code == 406, (url, response.content[:300])
    records = _records(before)
    assert len(records) == 1, (url, records)  # was none
    assert records[0][RECORD_FIELDS.index("outcome")] == "error"
    assert records[0][RECORD_FIELDS.index("patient_id")] == patient.pk
    # The same record as the same request refused for another reason after authentication (an unknown format).
    before = AuditEvent.objects.count()
    assert clinician.get(_with(url, "format=xml")).status_code == 400
    assert _records(before) == records


def test_the_406_bodies_keep_their_shapes(clinician, patient):
    rest = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT=XML)
    assert rest.status_code == 406
    assert rest["Content-Type"].startswith("application/json")
    assert rest.json()["code"] == "not_acceptable"
    fhir = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT=STU3)
    assert fhir.status_code == 406
    assert fhir["Content-Type"].startswith("application/fhir+json")
    outcome = fhir.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "4.0.1" in outcome["issue"][0]["diagnostics"]
    named = clinician.get(f"/fhir/Patient/{patient.pk}?_format=application/json", HTTP_ACCEPT=STU3)
    assert named.status_code == 406
    assert named["Content-Type"].startswith("application/json")
    assert named.json()["resourceType"] == "OperationOutcome"


def test_a_406_naming_no_existing_patient_names_none(clinician, patient):
    before = AuditEvent.objects.count()
    assert clinician.get(f"/api/v1/patients/{patient.pk + 1000}/", HTTP_ACCEPT=XML).status_code == 406
    assert [(r[RECORD_FIELDS.index("outcome")], r[RECORD_FIELDS.index("patient_id")]) for r in _records(before)] == [
        ("error", None)
    ]


def test_a_client_without_the_scope_is_refused_403_and_recorded_denied(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='no-patient-read-b')}")
    before = AuditEvent.objects.count()
    response = api.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT=XML)
    assert response.status_code == 403, response.content[:300]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert [(r[RECORD_FIELDS.index("outcome")], r[RECORD_FIELDS.index("patient_id")]) for r in _records(before)] == [
        ("denied", patient.pk)
    ]


def test_406s_spend_the_rate_limit_once_each_and_past_it_the_429_answers(clinician, patient, monkeypatch):
    limit = 3
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test
    RateLimitPolicy.objects.filter(scope="patient_data").update(requests=limit, burst_per_second=None)
    policy_cache._bump()
    before = AuditEvent.objects.count()
    responses = [clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_ACCEPT=XML) for _ in range(limit + 3)]
    assert [r.status_code for r in responses] == [406] * limit + [429] * 3
    assert responses[0]["RateLimit-Remaining"] == str(limit - 1)  # spent once, not twice
    outcomes = [r[RECORD_FIELDS.index("outcome")] for r in _records(before)]
    assert outcomes == ["error"] * limit + ["denied"]  # one 429 record per window
