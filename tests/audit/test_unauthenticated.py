"""A request for PHI without valid credentials (a 401) is kept in the trail too, as an anonymous actor's denied
attempt naming the patient it asked for; a flood of them writes one record per address and view per window."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-UA-0042", family_name="Nakamura", given_name="Kei", birth_date=date(1975, 6, 7), sex="male"
    )


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/api/v1/patients/{pk}/", {}),  # no credentials
        ("/api/v1/patients/{pk}/", {"HTTP_AUTHORIZATION": "Bearer not-a-token"}),  # a wrong one
        ("/fhir/Patient/{pk}", {}),
    ],
)
def test_a_401_is_recorded_as_an_anonymous_denied_attempt(api, patient, monkeypatch, url, headers):
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test
    for _ in range(4):
        assert api.get(url.format(pk=patient.pk), **headers).status_code == 401
    [event] = AuditEvent.objects.all()
    assert (event.actor_type, event.actor_id, event.actor_name) == ("anonymous", None, "")
    assert (event.action, event.outcome, event.patient_id, event.source_ip) == (
        "read",
        "denied",
        patient.pk,
        "127.0.0.1",
    )


def test_the_trail_filters_anonymous_attempts(api, issue_token, patient):
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 401
    auditor = issue_token("audit:read")
    response = api.get("/api/v1/audit/?actor_type=anonymous", HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert response.status_code == 200
    assert [(e["actor_type"], e["patient_id"]) for e in response.json()["results"]] == [("anonymous", patient.pk)]
