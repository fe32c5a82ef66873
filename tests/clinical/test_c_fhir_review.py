"""FHIR search edge cases found by an adversarial review: what a count-only search, a cursor and a
sub-second date mean, each checked against the rows the database holds."""

import base64
import json

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

pytestmark = pytest.mark.django_db


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
