"""The latest-vitals query compiled once per shape answers exactly what the ORM's DISTINCT ON query answers."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.clinical import selectors
from apps.clinical.services import observation_record
from apps.core.compiled import CompiledShapes

pytestmark = pytest.mark.django_db


def _orm(patient_id: int, **window) -> list:
    return list(selectors.latest_observations_query(patient_id=patient_id, **window))


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"category": "vital-signs"},
        {"category": "laboratory"},
        {"codes": ["8867-4"]},
        {"codes": ["8867-4", "8310-5"], "category": "vital-signs"},
        {"since": timedelta(hours=25)},
        {"since": timedelta(hours=25), "until": timedelta(hours=5), "codes": ["8310-5"]},
        {"codes": ["9279-1"]},
    ],
)
def test_compiled_latest_is_the_orms_answer(patient, vitals, window):
    observation_record(patient=patient, code="9279-1", value=16, unit="/min", effective_at=datetime.now(UTC))
    now = datetime.now(UTC)
    window = {name: now - value if isinstance(value, timedelta) else value for name, value in window.items()}
    compiled = selectors.latest_observations(patient_id=patient.pk, **window)
    expected = _orm(patient.pk, **window)
    assert [(o.pk, o.code, o.value, o.effective_at) for o in compiled] == [
        (o.pk, o.code, o.value, o.effective_at) for o in expected
    ]
    assert all(o.effective_at.tzinfo is not None and not o._state.adding for o in compiled)


def test_one_statement_text_per_shape_and_an_empty_category_filters_nothing(patient, vitals):
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            selectors.latest_observations(patient_id=patient.pk, category="vital-signs")
    assert len(queries) == 3 and len({query["sql"].split(" WHERE ")[0] for query in queries}) == 1
    assert len(selectors.latest_observations(patient_id=patient.pk, category="")) == 2  # as the ORM: no filter
    many = [f"{n}-0" for n in range(20)] + ["8867-4"]  # more codes than any panel: the plain ORM path
    assert [o.code for o in selectors.latest_observations(patient_id=patient.pk, codes=many)] == ["8867-4"]


@pytest.mark.parametrize(
    ("window", "limit"),
    [
        ({}, 100),
        ({"category": "vital-signs"}, 3),
        ({"codes": ["8867-4"]}, 2),
        ({"codes": ["8867-4", "8310-5"], "since": timedelta(hours=25)}, 100),
        ({"since": timedelta(hours=25), "until": timedelta(hours=5)}, 1),
    ],
)
def test_compiled_newest_is_the_orms_answer(patient, vitals, window, limit):
    now = datetime.now(UTC)
    window = {name: now - value if isinstance(value, timedelta) else value for name, value in window.items()}
    compiled = selectors.newest_observations(patient_id=patient.pk, limit=limit, **window)
    expected = list(selectors.observation_list(patient_id=patient.pk, **window)[:limit])
    assert [(o.pk, o.code, o.effective_at) for o in compiled] == [(o.pk, o.code, o.effective_at) for o in expected]
    assert compiled and all(not o._state.adding for o in compiled)


def test_past_the_bound_on_windows_the_orm_answers_the_same(patient, vitals, monkeypatch):
    expected = selectors.newest_observations(patient_id=patient.pk, codes=["8867-4"], limit=3)
    monkeypatch.setattr(selectors, "window_queries", CompiledShapes(at_most=0))
    assert selectors.newest_observations(patient_id=patient.pk, codes=["8867-4"], limit=3) == expected
    assert selectors.latest_observations(patient_id=patient.pk, codes=["8867-4"]) == _orm(patient.pk, codes=["8867-4"])
    assert len(selectors.window_queries) == 0
