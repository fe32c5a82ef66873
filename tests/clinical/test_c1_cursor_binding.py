"""A searchset's cursor pages its own search only: one taken from another search (another patient, code, sort or
resource type) paged that search from a place in the first one's, silently answering the wrong rows. Cursors are
signed with their search's parameters (all but the page size, format and the cursor itself); another search's
is a 400 OperationOutcome on `_cursor`."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.http import QueryDict
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.clinical.fhir.params import encode_cursor, search_binding
from apps.clinical.services import observation_record, patient_create

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def two_patients(patient):
    other = patient_create(mrn="MRN-000456", family_name="Roe", given_name="Bo", birth_date=datetime(1980, 1, 1).date())
    now = datetime.now(UTC)
    for someone in (patient, other):
        for hours in range(1, 4):
            at = now - timedelta(hours=hours)
            observation_record(patient=someone, code="8867-4", value=60 + hours, effective_at=at)
            observation_record(patient=someone, code="8310-5", value=36.5, unit="Cel", effective_at=at)
    return patient, other


def _next(response) -> str:
    assert response.status_code == 200, response.content[:300]
    bundle = Bundle.model_validate(response.json())
    (url,) = [link.url for link in bundle.link if link.relation == "next"]
    return url.removeprefix("http://testserver")


def _cursor(next_url: str) -> str:
    return parse_qs(urlparse(next_url).query)["_cursor"][0]


def _refused(response) -> OperationOutcome:
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == ["_cursor"]
    return outcome


def test_a_cursor_is_refused_on_any_other_search(clinician, two_patients):
    mine, theirs = two_patients
    first = {"patient": str(mine.pk), "code": "8867-4", "_count": "1"}
    next_url = _next(clinician.get("/fhir/Observation", first))
    cursor = _cursor(next_url)
    # Its own search pages on, at any page size.
    assert clinician.get(next_url).status_code == 200
    assert clinician.get("/fhir/Observation", {**first, "_count": "5", "_cursor": cursor}).status_code == 200
    for other in (
        {**first, "patient": str(theirs.pk)},
        {**first, "code": "8310-5"},
        {**first, "_sort": "date"},
        {key: value for key, value in first.items() if key != "code"},
        {**first, "status": "final"},
    ):
        _refused(clinician.get("/fhir/Observation", {**other, "_cursor": cursor}))
    _refused(clinician.get("/fhir/Encounter", {"patient": str(mine.pk), "_cursor": cursor}))


def test_a_patient_search_cursor_is_bound_too(clinician, two_patients):
    next_url = _next(clinician.get("/fhir/Patient", {"birthdate": "ge1900", "_count": "1"}))
    cursor = _cursor(next_url)
    assert clinician.get(next_url).status_code == 200
    _refused(clinician.get("/fhir/Patient", {"birthdate": "ge1975", "_count": "1", "_cursor": cursor}))
    _refused(clinician.get("/fhir/Patient", {"_cursor": cursor}))


def test_a_posted_search_pages_by_its_key_and_its_cursor_is_bound(clinician, two_patients):
    mine, theirs = two_patients
    body = urlencode({"patient": str(mine.pk), "_count": "2"})
    next_url = _next(clinician.post("/fhir/Observation/_search", body, content_type=FORM))
    assert "_search=" in next_url
    assert clinician.get(next_url).status_code == 200
    _refused(clinician.get("/fhir/Observation", {"patient": str(theirs.pk), "_cursor": _cursor(next_url)}))


def test_the_checks_past_the_signature_still_refuse_a_bound_cursor(clinician, two_patients):
    """A cursor signed for this very search, with a naive instant or an id out of range, is still a 400."""
    mine, _ = two_patients
    query = {"patient": str(mine.pk)}
    search = search_binding("Observation", QueryDict(urlencode(query)))
    for values in (["2026-12-04T18:16:30", 5], ["2026-12-04T18:16:30+00:00", 2**63], [True, 5]):
        outcome = _refused(clinician.get("/fhir/Observation", {**query, "_cursor": encode_cursor(values, search)}))
        assert outcome.issue[0].diagnostics == "not a cursor this server issued"  # not the signature's refusal


def test_the_binding_ignores_page_size_format_and_the_order_of_a_range():
    one = QueryDict("patient=1&date=ge2024-01-01&date=le2024-02-01&_count=5&_format=json")
    two = QueryDict("date=le2024-02-01&patient=1&date=ge2024-01-01")
    assert search_binding("Observation", one) == search_binding("Observation", two)
    assert search_binding("Observation", one) != search_binding("Encounter", one)
    assert search_binding("Patient", QueryDict("_count=3")) == ""
