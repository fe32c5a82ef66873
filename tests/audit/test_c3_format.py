"""A refused `?format=` on a patient-data REST view says why: given twice (`format=json&format=json`) it said
"Not a format this view answers", as an unknown one does, though json is one; the negotiation tells them apart
(apps.core.negotiation.UnknownFormat) and the view now keeps what it said. Either is still a 400 on `format`,
recorded as a refused access to the patient the URL names."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinician(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'clinical:read', name='ward-app')}")
    return api


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-C3-0001", family_name="Nakamura", given_name="Yui", birth_date=date(1984, 7, 9), sex="female"
    )


def _format_refusal(response) -> str:
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"].split(";")[0] == "application/json"
    message = response.json()["errors"]["format"]
    return message if isinstance(message, str) else " ".join(message)


PATHS = ["/api/v1/patients/{id}/", "/api/v1/patients/{id}/vitals/", "/api/v1/patients/"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("query", ["format=json&format=json", "format=json&format=xml"])
def test_a_format_given_twice_says_so(clinician, patient, path, query):
    message = _format_refusal(clinician.get(f"{path.format(id=patient.pk)}?{query}"))
    assert message.startswith("Given more than once"), message
    assert "Not a format" not in message
    assert "json" in message  # what the view answers


@pytest.mark.parametrize("path", PATHS)
def test_an_unknown_format_says_it_is_not_one(clinician, patient, path):
    message = _format_refusal(clinician.get(f"{path.format(id=patient.pk)}?format=xml"))
    assert message.startswith("Not a format this view answers"), message
    assert "json" in message


def test_the_refusal_is_still_recorded_against_the_patient_asked_for(clinician, patient):
    for query in ("format=json&format=json", "format=xml"):
        before = AuditEvent.objects.count()
        _format_refusal(clinician.get(f"/api/v1/patients/{patient.pk}/?{query}"))
        [event] = AuditEvent.objects.order_by("seq")[before:]
        assert (event.outcome, event.patient_id) == ("error", patient.pk)
