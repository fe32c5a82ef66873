"""A search's repeats and alternatives are capped, and compiling its SQL is linear in its bound values.

Before: `date` could be repeated without limit (each repeat up to 50 alternatives), each repeat was a new
shape, and `CompiledQuery._compile` scanned every parameter for every slot with a list test of the taken
positions: 200 repeats of 50 dates held a core for about six minutes, and every new shape stayed in the table.
"""

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.clinical.fhir import views
from apps.clinical.models import Observation
from apps.core import compiled
from apps.core.compiled import BOUND, CompiledQuery, CompiledShapes

pytestmark = pytest.mark.django_db

DAYS = ",".join(f"ap2026-12-0{i % 9 + 1}" for i in range(50))


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _refused(response, parameter: str) -> str:
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == [parameter]
    return outcome.issue[0].diagnostics


def test_five_date_repeats_are_a_400_outcome(clinician, patient):
    query = "&".join(["date=ge2024-01-01"] * 5)
    _refused(clinician.get(f"/fhir/Observation?patient={patient.pk}&{query}"), "date")
    ok = clinician.get(f"/fhir/Observation?patient={patient.pk}&" + "&".join(["date=ge2024-01-01"] * 4))
    assert ok.status_code == 200, ok.content[:300]


def test_repeated_birthdates_are_capped_too(clinician, patient):
    query = "&".join(["birthdate=ge1900"] * 5)
    _refused(clinician.get(f"/fhir/Patient?{query}"), "birthdate")


def test_the_reviewers_posted_search_is_refused_before_any_sql(clinician, patient):
    body = f"patient={patient.pk}&_count=1&" + "&".join(f"date={DAYS}" for _ in range(40))
    response = clinician.post("/fhir/Observation/_search", body, content_type="application/x-www-form-urlencoded")
    _refused(response, "date")
    assert len(views.compiled_searches) == 0


def test_alternatives_over_the_whole_search_are_capped(clinician, patient):
    three = "&".join(f"date={DAYS}" for _ in range(3))  # 150 alternatives in 3 allowed repeats
    diagnostics = _refused(clinician.get(f"/fhir/Observation?patient={patient.pk}&{three}"), "date")
    assert "100" in diagnostics
    two = f"date={DAYS}&date={DAYS.partition(',')[2]}"  # 99 and the patient: 100, still answered
    assert clinician.get(f"/fhir/Observation?patient={patient.pk}&{two}").status_code == 200


class _CountingInt(int):
    """A marker that counts how often it is compared: the work `_compile` does to place it."""

    comparisons = 0

    def __eq__(self, other):
        _CountingInt.comparisons += 1
        return int.__eq__(self, other)

    __hash__ = int.__hash__


def test_compiling_is_linear_in_the_slots(monkeypatch):
    numbers = iter(range(1, 10**6))
    monkeypatch.setattr(compiled, "_marker_for", lambda field: _CountingInt(-(2**62) + next(numbers)))
    slots = 400
    query = CompiledQuery(
        Observation,
        lambda **markers: Observation.objects.filter(pk__in=list(markers.values())),
        {f"id_{i}": "pk" for i in range(slots)},
        limit=BOUND,
    )
    _CountingInt.comparisons = 0
    _, _, placed, _ = query._compile("default")
    assert sorted(slot for _, slot in placed if slot) == sorted(f"id_{i}" for i in range(slots))
    assert len({position for position, _ in placed}) == slots + 1  # each its own position, and the LIMIT's
    # A scan per slot compared each marker with every parameter: slots times slots (160,000 here).
    assert _CountingInt.comparisons < 10 * slots
    assert query.rows(limit=5, **{f"id_{i}": i + 1 for i in range(slots)}) == []


def test_the_shapes_table_drops_the_least_recently_used():
    shapes = CompiledShapes(at_most=3)
    made = []

    def make(name):
        return lambda: made.append(name) or object()

    for name in ("a", "b", "c"):
        shapes.get(name, make(name))
    shapes.get("a", make("a"))  # used: kept
    for name in ("d", "e"):
        assert shapes.get(name, make(name)) is not None  # a new shape past the bound is still compiled
    assert len(shapes) == 3 and made == ["a", "b", "c", "d", "e"]
    shapes.get("a", make("a"))
    assert made[-1] == "e"  # "a" stayed
    shapes.get("b", make("b"))
    assert made[-1] == "b"  # "b" had gone
