"""DRF's `?format=` names a renderer: one the API does not have (`xml`, `api`, a blank) was answered 404 "Not found."
for a patient that exists, where `?format=json` is a 400. It is a 400 naming `format` on every PHI view, REST and
FHIR, after the caller is identified, and the refused attempt is recorded as other refusals are."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _new_events(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq")[before:])


@pytest.mark.parametrize("value", ["xml", "api", " "])
@pytest.mark.parametrize("path", ["/api/v1/patients/{}/", "/api/v1/patients/{}/vitals/"])
def test_an_unknown_format_on_the_rest_api_is_a_400_naming_it(clinician, patient, path, value):
    before = AuditEvent.objects.count()
    response = clinician.get(path.format(patient.pk), {"format": value})
    assert response.status_code == 400, response.content[:300]
    assert "format" in response.json()["errors"]
    [event] = _new_events(before)
    assert (event.outcome, event.patient_id) == ("error", patient.pk)


@pytest.mark.parametrize("value", ["xml", "api", " "])
def test_an_unknown_format_on_a_fhir_read_is_a_400_operation_outcome(clinician, patient, value):
    before = AuditEvent.objects.count()
    response = clinician.get(f"/fhir/Patient/{patient.pk}", {"format": value})
    assert response.status_code == 400, response.content[:300]
    issue = response.json()["issue"][0]
    assert issue["code"] == "invalid" and issue["expression"] == ["format"]
    [event] = _new_events(before)
    assert (event.outcome, event.patient_id) == ("error", patient.pk)


def test_an_unknown_format_on_a_fhir_search_is_a_400(clinician, patient):
    response = clinician.get("/fhir/Observation", {"patient": str(patient.pk), "format": "xml"})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["issue"][0]["expression"] == ["format"]


def test_without_credentials_it_is_still_a_401_not_a_404(api, patient):
    assert api.get(f"/api/v1/patients/{patient.pk}/", {"format": "xml"}).status_code == 401


@pytest.mark.parametrize("value", ["xml", " "])
def test_an_unknown_format_on_fhir_metadata_is_a_400_not_a_404(api, value):
    response = api.get("/fhir/metadata", {"format": value})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["issue"][0]["expression"] == ["format"]
