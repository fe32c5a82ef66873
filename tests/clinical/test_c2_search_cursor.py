"""A patient search's cursor is bound to its search: the cursor held only the last id seen, so one reused with
other parameters answered the other search's patients after that id, a page of a search nobody started (a
client switching a filter mid-scroll skipped every match before the id, silently). It is a 400 on `cursor` now;
the same search pages on, with any page size."""

from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

PATIENTS = "/api/v1/patients/"


@pytest.fixture
def families(db) -> None:
    for index in range(6):
        for family in ("Ng", "Nguyen"):
            patient_create(mrn=f"{family}-{index}", family_name=family, given_name="Al", birth_date=date(1970, 1, 1))


def _cursor(next_url: str) -> str:
    return parse_qs(urlsplit(next_url).query)["cursor"][0]


def test_a_cursor_reused_with_another_search_is_a_400_on_cursor(clinician, families):
    first = clinician.get(PATIENTS, {"family": "Nguyen", "page_size": 2}).json()
    cursor = _cursor(first["next"])
    for other in ({"family": "Ng"}, {"family": "Nguyen", "birth_date": "1970-01-01"}, {"name": "Nguyen"}):
        response = clinician.get(PATIENTS, {**other, "page_size": 2, "cursor": cursor})
        assert response.status_code == 400, (other, response.content[:300])
        assert set(response.json()["errors"]) == {"cursor"}
        assert "another search" in response.json()["errors"]["cursor"][0]


def test_the_same_search_pages_on_with_any_page_size(clinician, families):
    seen = []
    body = clinician.get(PATIENTS, {"family": "Nguyen", "page_size": 2}).json()
    seen += [row["id"] for row in body["results"]]
    response = clinician.get(PATIENTS, {"family": "Nguyen", "page_size": 10, "cursor": _cursor(body["next"])})
    assert response.status_code == 200, response.content[:300]
    seen += [row["id"] for row in response.json()["results"]]
    assert len(seen) == len(set(seen)) == 6
    previous = clinician.get(response.json()["previous"])
    assert previous.status_code == 200, previous.content[:300]
    assert [row["id"] for row in previous.json()["results"]] == seen[:2]
