"""Numbers in a clinical JSON body are JSON numbers: DRF read `"value": "98.6"` as 98.6, `"limit": "10"` as 10 and
`true` as 1, so a client quoting its numbers was never told its payload was malformed. They are a 400 on the
field now; a query string (always text) reads as before."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.clinical.models import Observation

pytestmark = pytest.mark.django_db

WINDOW = "/api/v1/patients/window/"


def _vitals_url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/vitals/"


def _reading(**fields) -> dict:
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return {"code": "8867-4", "value": 80, "effective_at": at, **fields}


@pytest.mark.parametrize("value", ["80", "98.6", True, False])
def test_a_quoted_or_boolean_measurement_is_a_400_on_value(clinician, patient, value):
    response = clinician.post(_vitals_url(patient), _reading(value=value), format="json")
    assert response.status_code == 400, response.content[:300]
    assert "json number" in str(response.json()["errors"]["value"]).lower()
    assert not Observation.objects.filter(patient=patient).exists()


def test_a_quoted_encounter_id_is_a_400_on_the_field(clinician, patient):
    response = clinician.post(_vitals_url(patient), _reading(encounter_id="1"), format="json")
    assert response.status_code == 400, response.content[:300]
    assert "json number" in str(response.json()["errors"]["encounter_id"]).lower()


@pytest.mark.parametrize(("field", "value"), [("limit", "10"), ("offset", "0"), ("limit", True)])
def test_a_posted_window_with_a_quoted_number_is_a_400_on_the_field(clinician, patient, field, value):
    response = clinician.post(WINDOW, {"family": "Müller", field: value}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "json number" in str(response.json()["errors"][field]).lower()


def test_numbers_as_numbers_and_query_strings_still_read(clinician, patient):
    created = clinician.post(_vitals_url(patient), _reading(value=80.5), format="json")
    assert created.status_code == 201, created.content[:300]
    posted = clinician.post(WINDOW, {"family": "Müller", "limit": 10, "offset": 0}, format="json")
    assert posted.status_code == 200, posted.content[:300]
    assert posted.json()["count"] == 1
    queried = clinician.get(WINDOW, {"family": "Müller", "limit": "10"})
    assert queried.status_code == 200, queried.content[:300]
    vitals = clinician.get(_vitals_url(patient), {"limit": "10"})
    assert vitals.status_code == 200, vitals.content[:300]
    assert len(vitals.json()["results"]) == 1
