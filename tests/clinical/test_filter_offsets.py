"""The REST filters `since` and `until` (vitals, encounters) take an instant with its offset, as FHIR's `date`
does: a time without one was read on the server's clock (TIME_ZONE), where a time in the hour the clocks go
back names two instants, and one of them was picked silently (an hour of vitals, or a stay, in or out)."""

from datetime import UTC, datetime

import pytest

from apps.clinical.models import Encounter
from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db

# 2024-11-03 01:30 in New York happened twice: 05:30Z (EDT) and 06:30Z (EST).
FIRST, SECOND = datetime(2024, 11, 3, 5, 30, tzinfo=UTC), datetime(2024, 11, 3, 6, 30, tzinfo=UTC)


@pytest.fixture
def new_york(settings):
    settings.TIME_ZONE = "America/New_York"


@pytest.fixture
def twice(patient):
    return [observation_record(patient=patient, code="8867-4", value=70, effective_at=at) for at in (FIRST, SECOND)]


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("value", ["2024-11-03T01:30:00", "2024-11-03T01:30"])
def test_a_vitals_filter_without_an_offset_is_a_400_not_a_guess(clinician, new_york, patient, twice, field, value):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {field: value})
    assert response.status_code == 400, response.content[:300]
    assert "offset" in str(response.json()["errors"][field])


@pytest.mark.parametrize("field", ["since", "until"])
def test_an_encounters_filter_without_an_offset_is_a_400_not_a_guess(clinician, new_york, patient, field):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {field: "2024-11-03T01:30:00"})
    assert response.status_code == 400, response.content[:300]
    assert "offset" in str(response.json()["errors"][field])


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("2024-11-03T01:30:00-04:00", [FIRST]),
        ("2024-11-03T01:30:00-05:00", [SECOND, FIRST]),
        ("2024-11-03T05:30:00Z", [FIRST]),
    ],
)
def test_a_filter_with_its_offset_names_one_instant(clinician, new_york, patient, twice, until, expected):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {"until": until})
    assert response.status_code == 200, response.content[:300]
    got = [datetime.fromisoformat(row["effective_at"].replace("Z", "+00:00")) for row in response.json()["results"]]
    assert got == expected


def test_an_encounters_filter_with_its_offset_still_finds_the_stay(clinician, new_york, patient):
    stay = Encounter.objects.create(
        patient=patient, encounter_class="IMP", status="finished", period_start=FIRST, period_end=SECOND
    )
    response = clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {"since": "2024-11-03T01:45:00-05:00"})
    assert response.status_code == 200, response.content[:300]
    assert [row["id"] for row in response.json()["results"]] == []
    response = clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {"since": "2024-11-03T01:15:00-05:00"})
    assert [row["id"] for row in response.json()["results"]] == [stay.pk]


@pytest.mark.parametrize(("field", "expected"), [("since", [SECOND, FIRST]), ("until", [])])
def test_a_bare_date_is_the_start_of_that_day_on_the_hospital_s_clock(
    clinician, new_york, patient, twice, field, expected
):
    """As FHIR's `date=ge2024-11-03`: midnight in New York (04:00Z), before both 01:30s."""
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {field: "2024-11-03"})
    assert response.status_code == 200, response.content[:300]
    got = [datetime.fromisoformat(row["effective_at"].replace("Z", "+00:00")) for row in response.json()["results"]]
    assert got == expected


def test_a_recorded_measurement_still_needs_its_time_and_offset(clinician, patient):
    response = clinician.post(
        f"/api/v1/patients/{patient.pk}/vitals/",
        {"code": "8867-4", "value": 70, "effective_at": "2024-11-03"},
        format="json",
    )
    assert response.status_code == 400, response.content[:300]
    assert "effective_at" in response.json()["errors"]
