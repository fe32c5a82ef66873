"""An MRN lookup naming its identifier system as something other than a URI (`"system": "MRN"`, the identifier's
type code, a common slip) answered 404 "No patient has this MRN", sending the integrator looking for a missing
patient. It is a field-level 400 on `system`, as registering a patient with that system is."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("system", ["MRN", "hospital mrn", "://x", "mrn-system"])
def test_a_system_that_is_not_a_uri_is_a_field_level_400(clinician, patient, system):
    before = AuditEvent.objects.count()
    response = clinician.post("/api/v1/patients/lookup/", {"mrn": patient.mrn, "system": system}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "system" in response.json()["errors"]
    assert AuditEvent.objects.count() == before  # bad input: nothing was looked up


def test_the_patients_own_system_still_finds_them(clinician, patient):
    body = {"mrn": patient.mrn, "system": patient.identifier_system}
    assert clinician.post("/api/v1/patients/lookup/", body, format="json").json()["id"] == patient.pk
    other = {"mrn": patient.mrn, "system": "urn:oid:1.2.3.4"}
    assert clinician.post("/api/v1/patients/lookup/", other, format="json").status_code == 404
