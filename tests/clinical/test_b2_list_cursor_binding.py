"""A patient's encounter and medication lists page by a cursor bound to the list that issued it, as a patient
search's is: the cursor held only the last position seen, so one taken from one patient's list (or one status)
and replayed on another patient's (or another status) paged that list from a place in the first one, silently
answering rows of a search nobody started. It is a 400 on `cursor` now; the list itself pages on, every row
once, at any page size."""

from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.clinical.models import Encounter, MedicationRequest
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = ("finished", "in-progress")


@pytest.fixture
def two_patients(patient):
    other = patient_create(mrn="MRN-000456", family_name="Roe", given_name="Bo", birth_date=date(1980, 1, 1))
    for someone in (patient, other):
        for index in range(6):
            # Pairs share an instant: the id breaks the tie, and no row may be skipped or repeated across pages.
            at = START + timedelta(days=index // 2)
            encounter = Encounter.objects.create(
                patient=someone, encounter_class="AMB", status=STATUSES[index % 2], period_start=at
            )
            MedicationRequest.objects.create(
                patient=someone, encounter=encounter, rxnorm_code="197361", display="Amlodipine 5 MG",
                status=("active", "completed")[index % 2], authored_at=at,
            )  # fmt: skip
    return patient, other


def _cursor(next_url: str) -> str:
    return parse_qs(urlsplit(next_url).query)["cursor"][0]


def _refused(response) -> None:
    assert response.status_code == 400, response.content[:300]
    assert set(response.json()["errors"]) == {"cursor"}
    assert "another search" in response.json()["errors"]["cursor"][0]


def _walk(clinician, path: str, query: dict) -> list[int]:
    seen, body = [], clinician.get(path, query).json()
    while True:
        seen += [row["id"] for row in body["results"]]
        if not body["next"]:
            return seen
        response = clinician.get(body["next"])
        assert response.status_code == 200, response.content[:300]
        body = response.json()


@pytest.mark.parametrize(
    ("kind", "filters"), [("encounters", {"status": "finished"}), ("medications", {"status": "active"})]
)
def test_a_cursor_replayed_on_another_patient_or_filter_is_a_400(clinician, two_patients, kind, filters):
    mine, theirs = two_patients
    path = f"/api/v1/patients/{mine.pk}/{kind}/"
    cursor = _cursor(clinician.get(path, {"page_size": 2}).json()["next"])
    # Its own list pages on, at any page size.
    assert clinician.get(path, {"page_size": 5, "cursor": cursor}).status_code == 200
    _refused(clinician.get(f"/api/v1/patients/{theirs.pk}/{kind}/", {"page_size": 2, "cursor": cursor}))
    _refused(clinician.get(path, {**filters, "page_size": 2, "cursor": cursor}))
    filtered = _cursor(clinician.get(path, {**filters, "page_size": 1}).json()["next"])
    _refused(clinician.get(path, {"page_size": 1, "cursor": filtered}))
    _refused(clinician.get(f"/api/v1/patients/{theirs.pk}/{kind}/", {**filters, "page_size": 1, "cursor": filtered}))


def test_an_encounter_cursor_is_refused_on_the_medication_list_and_a_date_filter_binds(clinician, two_patients):
    mine, _ = two_patients
    encounters, medications = f"/api/v1/patients/{mine.pk}/encounters/", f"/api/v1/patients/{mine.pk}/medications/"
    cursor = _cursor(clinician.get(encounters, {"page_size": 2}).json()["next"])
    _refused(clinician.get(medications, {"page_size": 2, "cursor": cursor}))
    _refused(clinician.get(encounters, {"since": "2026-01-02", "page_size": 2, "cursor": cursor}))
    dated = _cursor(clinician.get(encounters, {"since": "2026-01-02", "page_size": 1}).json()["next"])
    _refused(clinician.get(encounters, {"since": "2026-01-01", "page_size": 1, "cursor": dated}))


@pytest.mark.parametrize("kind", ["encounters", "medications"])
@pytest.mark.parametrize("page_size", [1, 2, 4])
def test_paging_still_walks_every_row_once(clinician, two_patients, kind, page_size):
    mine, _ = two_patients
    path = f"/api/v1/patients/{mine.pk}/{kind}/"
    model = Encounter if kind == "encounters" else MedicationRequest
    everything = set(model.objects.filter(patient=mine).values_list("pk", flat=True))
    seen = _walk(clinician, path, {"page_size": page_size})
    assert len(seen) == len(set(seen)) and set(seen) == everything
    status = "finished" if kind == "encounters" else "active"
    seen = _walk(clinician, path, {"status": status, "page_size": page_size})
    assert len(seen) == len(set(seen)) == 3


@pytest.mark.parametrize("kind", ["encounters", "medications"])
def test_a_cursor_page_keeps_the_list_query_budget(clinician, two_patients, query_budget, kind):
    mine, _ = two_patients
    path = f"/api/v1/patients/{mine.pk}/{kind}/"
    next_url = clinician.get(path, {"page_size": 2}).json()["next"]
    with query_budget(9):  # tests/clinical/test_query_budgets.py's budget for these lists' first page
        response = clinician.get(next_url)
    assert response.status_code == 200, response.content[:300]
