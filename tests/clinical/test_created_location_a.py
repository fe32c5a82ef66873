"""A 201 from the REST creates carried no Location: the client had to build the new resource's URL itself."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_created_patient_and_reading_name_their_url(clinician, patient):
    body = {"mrn": "MRN-LOC-1", "family_name": "Doe", "given_name": "Jo", "birth_date": "1980-01-02"}
    created = clinician.post("/api/v1/patients/", body, format="json")
    assert created.status_code == 201
    assert created["Location"] == f"http://testserver/api/v1/patients/{created.json()['id']}/"
    assert clinician.get(created["Location"].removeprefix("http://testserver")).json()["mrn"] == "MRN-LOC-1"

    reading = {"code": "8867-4", "value": 64, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}
    created = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", reading, format="json")
    assert created.status_code == 201
    assert created["Location"] == f"http://testserver/api/v1/patients/{patient.pk}/vitals/{created.json()['id']}/"
