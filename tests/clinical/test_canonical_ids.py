"""A patient has one URL: `/api/v1/patients/007/` is not patient 7 (as FHIR's `Patient/007` is not), so no
patient is read, cached or audited under a second spelling of its id."""

from datetime import UTC, datetime

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROUTES = ["{}/", "{}/vitals/", "{}/encounters/", "{}/medications/"]


def _events_since(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq")[before:])


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("zeros", ["0", "00000"])
def test_a_leading_zero_id_is_an_audited_404_naming_no_patient(clinician, patient, route, zeros):
    canonical = clinician.get("/api/v1/patients/" + route.format(patient.pk))
    assert canonical.status_code == 200
    unknown = clinician.get("/api/v1/patients/" + route.format(999_999_999))
    before = AuditEvent.objects.count()
    response = clinician.get("/api/v1/patients/" + route.format(f"{zeros}{patient.pk}"))
    assert response.status_code == 404
    assert response.json() == unknown.json()  # answered as an unknown id: nothing of patient 1 served
    [event] = _events_since(before)
    assert (event.outcome, event.patient_id, event.resource_id) == ("not_found", None, "")


def test_posting_vitals_to_a_leading_zero_id_writes_nothing(clinician, patient):
    body = {"code": "8867-4", "value": 72, "effective_at": datetime.now(UTC).isoformat()}
    before = AuditEvent.objects.count()
    response = clinician.post(f"/api/v1/patients/0{patient.pk}/vitals/", body, format="json")
    assert response.status_code == 404
    assert not patient.observations.exists()
    [event] = _events_since(before)
    assert (event.outcome, event.patient_id, event.resource_id) == ("not_found", None, "")


@pytest.mark.parametrize("route", ROUTES)
def test_a_refused_leading_zero_id_names_no_patient(api, issue_token, patient, route):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read', name='no-clinical-scope')}")
    before = AuditEvent.objects.count()
    assert api.get("/api/v1/patients/" + route.format(f"0{patient.pk}")).status_code == 403
    [event] = _events_since(before)
    assert (event.outcome, event.patient_id) == ("denied", None)


@pytest.mark.parametrize("route", ROUTES)
def test_the_route_template_the_metrics_label_requests_by_is_unchanged(route):
    """Refused in the view, not by another converter: a new template would start a new series for each route."""
    from django.urls import resolve

    assert resolve("/api/v1/patients/" + route.format("007")).route == "api/v1/patients/" + route.format(
        "<id:patient_id>"
    )
