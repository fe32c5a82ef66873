"""A measurement's time is an instant: posted without its offset it was read on the server's clock, and in
the hour the clocks go back (two instants with one local time) one of them was stored without a word."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


@override_settings(TIME_ZONE="America/New_York")
@pytest.mark.parametrize("moment", ["2024-11-03T01:30:00", "2024-11-03T01:30", "2024-06-01T08:00:00.5"])
def test_a_time_without_its_offset_is_a_400_naming_the_field(clinician, patient, moment):
    body = {"code": "8867-4", "value": 64, "effective_at": moment}
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, format="json")
    assert response.status_code == 400, response.content
    assert "offset" in response.json()["errors"]["effective_at"][0]
    assert not patient.observations.exists()


@pytest.mark.parametrize(
    ("moment", "stored"),
    [("2024-11-03T01:30:00-04:00", "2024-11-03T05:30:00Z"), ("2024-11-03T01:30:00-05:00", "2024-11-03T06:30:00Z"),
     ("2024-06-01T08:00:00Z", "2024-06-01T08:00:00Z")],
)  # fmt: skip
def test_a_time_with_its_offset_is_that_instant(clinician, patient, moment, stored):
    body = {"code": "8867-4", "value": 64, "effective_at": moment}
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["effective_at"] == stored


@pytest.mark.parametrize("moment", ["2024-02-30T08:00:00Z", "yesterday", 5, None])
def test_other_bad_times_are_still_400s(clinician, patient, moment):
    body = {"code": "8867-4", "value": 64, "effective_at": moment}
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, format="json")
    assert response.status_code == 400 and "effective_at" in response.json()["errors"]
