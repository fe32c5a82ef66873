"""A client missing a scope was refused 403 before its rate limit was counted (DRF checks permissions first), so
each refusal wrote a record naming the patient, at whatever rate the client chose. It now spends the limit first:
past it, the 429 is recorded once per window, as for any client."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache

pytestmark = pytest.mark.django_db

LIMIT = 3


@pytest.fixture
def low_limit(monkeypatch):
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test
    RateLimitPolicy.objects.filter(scope="patient_data").update(requests=LIMIT, burst_per_second=None)
    policy_cache._bump()


def test_a_client_without_the_scope_is_limited_and_its_records_bounded(api, issue_token, patient, low_limit):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='no-patient-read')}")
    before = AuditEvent.objects.count()
    statuses = [api.get(f"/api/v1/patients/{patient.pk}/").status_code for _ in range(LIMIT + 7)]
    statuses += [api.get(f"/fhir/Patient?_id={patient.pk}").status_code for _ in range(3)]
    assert statuses[:LIMIT] == [403] * LIMIT
    assert set(statuses[LIMIT:]) == {429}
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert len(events) <= LIMIT + 2  # LIMIT refusals, one 429 per view and window
    assert {(e.outcome, e.patient_id) for e in events} == {("denied", patient.pk)}


def test_a_refused_client_is_told_its_limit(api, issue_token, patient, low_limit):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='no-patient-read')}")
    response = api.get(f"/api/v1/patients/{patient.pk}/")
    assert response.status_code == 403
    assert response["RateLimit-Limit"] == str(LIMIT)


def test_a_client_with_the_scope_sees_no_change(clinician, patient, low_limit):
    responses = [clinician.get(f"/api/v1/patients/{patient.pk}/") for _ in range(LIMIT + 1)]
    assert [r.status_code for r in responses] == [200] * LIMIT + [429]
    assert responses[0]["RateLimit-Remaining"] == str(LIMIT - 1)


def test_an_anonymous_caller_is_still_refused_401(api, patient, low_limit):
    assert {api.get(f"/api/v1/patients/{patient.pk}/").status_code for _ in range(LIMIT + 2)} == {401}
