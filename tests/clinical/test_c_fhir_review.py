"""FHIR search edge cases found by an adversarial review: what a count-only search, a cursor and a
sub-second date mean, each checked against the rows the database holds."""

import base64
import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    return [int(entry.resource.id) for entry in Bundle.model_validate(response.json()).entry or []]


def _refused(response, parameter: str) -> OperationOutcome:
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == [parameter]
    return outcome


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("_summary=count&_count=abc", "_count"),
        ("_summary=count&_count=-1", "_count"),
        ("_summary=count&_count=1000000", "_count"),
        ("_summary=count&_cursor=%25%25", "_cursor"),
        ("_count=0&_cursor=WzFd", "_cursor"),  # a count has no pages: a cursor with it is not one the server issued
    ],
)
def test_a_count_only_search_refuses_what_it_would_otherwise_ignore(clinician, patient, query, parameter):
    """`_summary=count` and `_count=0` answered the total and ignored a malformed `_count` or a `_cursor`."""
    _refused(clinician.get(f"/fhir/Observation?patient={patient.pk}&{query}"), parameter)
    _refused(clinician.get(f"/fhir/Patient?{query}"), parameter)


@pytest.mark.parametrize("values", [[True], [False], ["2024-01-01T00:00:00+00:00", True]])
def test_a_cursor_of_booleans_is_not_one_this_server_issued(clinician, patient, values):
    """JSON `true` is a Python int: `[true]` was read as the id 1 and paged from there."""
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    resource = "Patient?" if len(values) == 1 else f"Observation?patient={patient.pk}&"
    _refused(clinician.get(f"/fhir/{resource}_cursor={cursor}"), "_cursor")


@pytest.fixture
def half_second(patient):
    """An observation at 10:00:00.5 and one at 10:00:00.9, in the same second."""
    at = datetime(2024, 3, 5, 10, 0, 0, 500000, tzinfo=UTC)
    return [
        observation_record(patient=patient, code="8867-4", value=70, effective_at=at),
        observation_record(patient=patient, code="8867-4", value=71, effective_at=at.replace(microsecond=900000)),
    ]


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("eq2024-03-05T10:00:00.5Z", [0]),  # a tenth of a second: [.5, .6)
        ("eq2024-03-05T10:00:00.50Z", [0]),
        ("eq2024-03-05T10:00:00.500000Z", [0]),  # a microsecond
        ("eq2024-03-05T10:00:00.2Z", []),  # read as the second from .2 to 1.2, it found both
        ("eq2024-03-05T10:00:00.9Z", [1]),
        ("gt2024-03-05T10:00:00.4Z", [0, 1]),  # read as ending at 1.4, it found neither
        ("lt2024-03-05T10:00:00.9Z", [0]),
        ("le2024-03-05T10:00:00.5Z", [0]),
        ("ne2024-03-05T10:00:00.5Z", [1]),
        ("sa2024-03-05T10:00:00.5Z", [1]),
        ("eq2024-03-05T10:00:00Z", [0, 1]),  # a whole second, as before
        ("eq2024-03-05T10:00Z", [0, 1]),
    ],
)
def test_a_date_with_fractional_seconds_names_that_precision(clinician, patient, half_second, date, expected):
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "_sort": "date", "date": date})
    assert _ids(response) == [half_second[i].pk for i in expected]


@pytest.mark.parametrize("accept", ["text/html,application/xhtml+xml,*/*;q=0.8", "application/fhir+xml", "text/html"])
@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("json", "application/fhir+json"), ("application/fhir+json", "application/fhir+json"),
     ("application/json", "application/json")],
)  # fmt: skip
def test_format_overrides_the_accept_header(clinician, patient, accept, fmt, media_type):
    """FHIR: `_format` overrides Accept, so a browser (Accept: text/html) can read the JSON. It was a 406."""
    for path in (f"/fhir/Patient/{patient.pk}", "/fhir/Patient", "/fhir/metadata"):
        response = clinician.get(path, {"_format": fmt}, HTTP_ACCEPT=accept)
        assert response.status_code == 200, (path, response.content[:300])
        assert response["Content-Type"].split(";")[0] == media_type
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT="application/fhir+xml").status_code == 406
    assert clinician.get(f"/fhir/Patient/{patient.pk}", {"_format": "xml"}, HTTP_ACCEPT=accept).status_code in (
        400,
        406,
    )
