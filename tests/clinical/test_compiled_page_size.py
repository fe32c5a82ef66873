"""The page size is a bound value of the compiled searches, not part of their shape: a client stepping
through page sizes would otherwise fill the bounded shape table, and every later search of any shape
would run through the ORM."""

import pytest
from django.db import connection

from apps.clinical import selectors
from apps.clinical.fhir import views
from apps.clinical.models import Observation, Patient
from apps.core.compiled import BOUND, CompiledQuery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    selectors.window_queries.clear()
    yield
    views.compiled_searches.clear()
    selectors.window_queries.clear()


def _newest_ids(patient_id: int, count: int) -> list[int]:
    rows = Observation.objects.filter(patient_id=patient_id, category="vital-signs").order_by("-effective_at", "-id")
    return list(rows.values_list("id", flat=True)[:count])


def test_forty_fhir_page_sizes_share_one_compiled_search(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    for count in range(1, 41):
        response = clinician.get(f"/fhir/Observation?patient={patient_id}&category=vital-signs&_count={count}")
        assert response.status_code == 200, response.content[:300]
        found = [int(entry["resource"]["id"]) for entry in response.json()["entry"]]
        assert found == _newest_ids(patient_id, count)
    assert len(views.compiled_searches) == 1


def test_rest_vitals_limits_share_one_compiled_window(loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    for limit in (1, 2, 3, 5, 8, 13, 21, 100):
        found = selectors.newest_observations(patient_id=patient_id, category="vital-signs", limit=limit)
        assert [observation.pk for observation in found] == _newest_ids(patient_id, limit)
    assert len(selectors.window_queries) == 1


def test_the_limit_is_a_parameter_of_one_statement_text(loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    query = CompiledQuery(
        Observation, lambda patient: Observation.objects.filter(patient=patient).order_by("-id"),
        {"patient": "patient"}, limit=BOUND,
    )  # fmt: skip
    statements = []

    def remember(execute, sql, params, many, context):
        statements.append((sql, tuple(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(remember):
        sizes = [len(query.rows(patient=patient_id, limit=limit)) for limit in (1, 4, 9)]
    assert sizes == [1, 4, 9]
    assert len({sql for sql, _ in statements}) == 1
    assert [params[-1] for _, params in statements] == [1, 4, 9]


@pytest.mark.parametrize("limit", [None, 0, -3])
def test_a_bound_limit_must_be_given_and_positive(loaded, limit):
    query = CompiledQuery(
        Observation, lambda patient: Observation.objects.filter(patient=patient), {"patient": "patient"}, limit=BOUND
    )
    with pytest.raises(TypeError):
        query.rows(patient=1, limit=limit)


def test_a_fixed_or_absent_limit_takes_no_limit_argument(loaded):
    query = CompiledQuery(
        Observation, lambda patient: Observation.objects.filter(patient=patient), {"patient": "patient"}, limit=5
    )
    with pytest.raises(TypeError):
        query.rows(patient=1, limit=3)
    assert len(query.rows(patient=Patient.objects.order_by("pk").first().pk)) == 5
