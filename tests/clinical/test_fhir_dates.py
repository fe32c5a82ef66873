"""FHIR date search as the specification defines it: every prefix (eq ne gt lt ge le sa eb ap) against the
period a value names (2024 is the whole year), on an instant (Observation.effective) and on a Period
(Encounter.period, ongoing while it has no end)."""

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle

from apps.clinical.fhir import views
from apps.clinical.models import Encounter, Observation
from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _ids(client, resource_type: str, query: str) -> set[int]:
    response = client.get(f"/fhir/{resource_type}?{query}&_count=1000")
    assert response.status_code == 200, response.content[:300]
    return {int(entry.resource.id) for entry in Bundle.model_validate(response.json()).entry or []}


@pytest.fixture
def stays(patient):
    """May 2024: a day case on the 3rd; an admission from 1 May to 10 May; one from 28 April, still in
    hospital; one from 20 May on."""

    def stay(start, end, status="finished"):
        return Encounter.objects.create(patient=patient, encounter_class="IMP", status=status,
                                        period_start=start, period_end=end)  # fmt: skip

    day = datetime(2024, 5, 3, 9, tzinfo=UTC)
    return {
        "day_case": stay(day, day + timedelta(hours=6)),
        "first_ten_days": stay(datetime(2024, 5, 1, 8, tzinfo=UTC), datetime(2024, 5, 10, 12, tzinfo=UTC)),
        "still_admitted": stay(datetime(2024, 4, 28, 22, tzinfo=UTC), None, status="in-progress"),
        "late_may": stay(datetime(2024, 5, 20, 8, tzinfo=UTC), datetime(2024, 5, 22, 8, tzinfo=UTC)),
    }


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        # Wholly inside the day / month.
        ("2024-05-03", {"day_case"}),
        ("2024-05", {"day_case", "first_ten_days", "late_may"}),
        ("ne2024-05-03", {"first_ten_days", "still_admitted", "late_may"}),
        # Some of the stay after 2 May: an admission not yet discharged is one.
        ("ge2024-05-02", {"day_case", "first_ten_days", "still_admitted", "late_may"}),
        ("gt2024-05-10", {"still_admitted", "late_may"}),
        ("gt2024-05-22T08:00:00Z", {"still_admitted"}),
        # Some of it before.
        ("lt2024-05-01", {"still_admitted"}),
        ("le2024-05-01", {"first_ten_days", "still_admitted"}),
        # Starts after / ends before the whole value.
        ("sa2024-05-03", {"late_may"}),
        ("eb2024-05-20", {"day_case", "first_ten_days"}),
        ("eb2024", set()),
        # Ranges: admitted during 1-5 May (started before its end, not over before its start).
        ("ge2024-05-04&date=le2024-05-05", {"first_ten_days", "still_admitted"}),
    ],
)
def test_encounter_dates_compare_the_whole_period(clinician, stays, patient, date, expected):
    found = _ids(clinician, "Encounter", f"patient={patient.pk}&date={date}")
    assert found == {stays[name].pk for name in expected}, date


def test_an_ongoing_admission_is_found_by_a_search_from_today(clinician, patient):
    """The ward's question: who is (or was) in hospital from today on. Compared with the start alone, a stay
    admitted before today and not yet over was missing."""
    admitted = datetime.now(UTC) - timedelta(days=2)
    stay = Encounter.objects.create(patient=patient, encounter_class="IMP", status="in-progress",
                                    period_start=admitted, period_end=None)  # fmt: skip
    today = datetime.now(UTC).date().isoformat()
    assert _ids(clinician, "Encounter", f"patient={patient.pk}&date=ge{today}") == {stay.pk}
    assert _ids(clinician, "Encounter", f"patient={patient.pk}&date=eq{today}") == set()


@pytest.fixture
def readings(patient):
    """Heart rate at 23:59:59 on 2 May, 00:00 and 12:00 on 3 May, 00:00 on 4 May 2024."""
    at = [datetime(2024, 5, 2, 23, 59, 59, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC),
          datetime(2024, 5, 3, 12, tzinfo=UTC), datetime(2024, 5, 4, tzinfo=UTC)]  # fmt: skip
    return [observation_record(patient=patient, code="8867-4", value=70, effective_at=moment).pk for moment in at]


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2024-05-03", [1, 2]),
        ("eq2024-05-03", [1, 2]),
        ("ne2024-05-03", [0, 3]),
        ("gt2024-05-03", [3]),
        ("sa2024-05-03", [3]),
        ("ge2024-05-03", [1, 2, 3]),
        ("lt2024-05-03", [0]),
        ("eb2024-05-03", [0]),
        ("le2024-05-03", [0, 1, 2]),
        ("2024", [0, 1, 2, 3]),
        ("ne2024", []),
        ("2024-05-03T12:00:00Z", [2]),
        ("2024-05-03T14:00:00%2B02:00", [2]),  # the same instant, written in another zone
        ("ge2024-05-03T00:00:00Z&date=lt2024-05-04", [1, 2]),
        ("2024-05-02,2024-05-04", [0, 3]),
    ],
)
def test_observation_dates_follow_every_prefix(clinician, patient, readings, date, expected):
    found = _ids(clinician, "Observation", f"patient={patient.pk}&date={date}")
    assert found == {readings[i] for i in expected}, date


def test_ap_widens_the_value_by_a_tenth_of_its_distance_from_now(clinician, patient):
    now = datetime.now(UTC)
    near = observation_record(patient=patient, code="8867-4", value=70, effective_at=now - timedelta(days=95)).pk
    far = observation_record(patient=patient, code="8867-4", value=70, effective_at=now - timedelta(days=130)).pk
    # 100 days ago, to the day: the window reaches about 10 days either way.
    day = (now - timedelta(days=100)).date().isoformat()
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date=ap{day}") == {near}
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date={day}") == set()
    assert far not in _ids(clinician, "Observation", f"patient={patient.pk}&date=ap{day}")
    assert Observation.objects.filter(pk__in=[near, far]).count() == 2


def test_a_day_is_the_hospitals_day(clinician, patient, settings):
    """`date=2024-05-03` on a New York ward: its own day (04:00Z to 04:00Z next day in May), not UTC's, which
    took in 20:00-24:00 of 2 May and left out the evening of the 3rd. Values with a zone keep theirs."""
    settings.TIME_ZONE = "America/New_York"
    evening_before = observation_record(
        patient=patient, code="8867-4", value=70, effective_at=datetime(2024, 5, 3, 2, tzinfo=UTC)
    ).pk  # 22:00 on 2 May
    evening = observation_record(
        patient=patient, code="8867-4", value=70, effective_at=datetime(2024, 5, 4, 2, tzinfo=UTC)
    ).pk  # 22:00 on 3 May
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date=2024-05-03") == {evening}
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date=lt2024-05-03") == {evening_before}
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date=2024-05") == {evening, evening_before}
    assert _ids(clinician, "Observation", f"patient={patient.pk}&date=2024-05-03T00:00:00Z,2024-05-03T02:00:00Z") == {
        evening_before
    }


def test_a_birth_date_is_a_day_in_any_zone(clinician, patient, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # its midnight is the day before in UTC
    assert _ids(clinician, "Patient", f"birthdate={patient.birth_date.isoformat()}") == {patient.pk}
