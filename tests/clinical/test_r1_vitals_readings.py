"""The plain vitals list (GET /api/v1/patients/<id>/vitals/, not ?latest) leaves out a reading retracted as entered
in error, or cancelled (Observation.NOT_READINGS), as every read does: it listed a retracted 300/min, and the
dashboard charted it. Asked for by status (selectors.newest_observations(statuses=...)), they are found; a list
cached before the fix, under the old key, is not served."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.caching.stack import get_or_load
from apps.clinical import selectors
from apps.clinical.api.representations import observation_json
from apps.clinical.models import Observation
from apps.clinical.services import observation_record, patient_scope

pytestmark = pytest.mark.django_db

HEART_RATE = "8867-4"


@pytest.fixture
def readings(patient) -> dict[str, Observation]:
    """80/min, then a 300/min retracted through the API's PATCH path's service, then a cancelled 250/min."""
    now = datetime.now(UTC)
    kept = observation_record(patient=patient, code=HEART_RATE, value=80, effective_at=now - timedelta(hours=3))
    wrong = observation_record(patient=patient, code=HEART_RATE, value=300, effective_at=now - timedelta(hours=2))
    cancelled = observation_record(
        patient=patient, code=HEART_RATE, value=250, effective_at=now - timedelta(hours=1), status="cancelled"
    )
    return {"kept": kept, "wrong": wrong, "cancelled": cancelled}


def _retract(clinician, observation: Observation) -> None:
    url = f"/api/v1/patients/{observation.patient_id}/vitals/{observation.pk}/"
    response = clinician.patch(url, {"status": "entered-in-error"}, format="json")
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize("query", [{"code": HEART_RATE, "limit": "2"}, {"code": HEART_RATE}, {}])
def test_the_list_leaves_out_a_retracted_and_a_cancelled_reading(clinician, patient, readings, query):
    _retract(clinician, readings["wrong"])
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", query)
    assert response.status_code == 200, response.content[:300]
    assert [(row["id"], row["value"]) for row in response.json()["results"]] == [(readings["kept"].pk, 80)]


def test_the_plain_orm_path_leaves_them_out_too(patient, readings):
    # More codes than a compiled query takes: the plain ORM runs the window.
    codes = [HEART_RATE] + [f"0000-{i}" for i in range(selectors._COMPILED_CODES_AT_MOST)]
    Observation.objects.filter(pk=readings["wrong"].pk).update(status="entered-in-error")
    rows = selectors.newest_observations(patient_id=patient.pk, codes=codes, limit=10)
    assert [row.pk for row in rows] == [readings["kept"].pk]


def test_asked_for_by_status_they_are_found(patient, readings):
    Observation.objects.filter(pk=readings["wrong"].pk).update(status="entered-in-error")
    asked = selectors.newest_observations(
        patient_id=patient.pk, codes=[HEART_RATE], statuses=["entered-in-error", "cancelled"], limit=10
    )
    assert [row.pk for row in asked] == [readings["cancelled"].pk, readings["wrong"].pk]


def test_a_list_cached_before_the_fix_is_not_served(clinician, patient, readings):
    """The key the list was cached under before (vitals-2) may hold a retracted reading: it is not read."""
    Observation.objects.filter(pk=readings["wrong"].pk).update(status="entered-in-error")  # retracted before
    stale = [observation_json(o) for o in (readings["cancelled"], readings["wrong"])]
    key = ["vitals-2", patient.pk, [HEART_RATE], "", "", False, 2]
    assert get_or_load("vital_signs", key, lambda: stale, scope=patient_scope(patient.pk)) == stale
    assert get_or_load("vital_signs", key, lambda: [], scope=patient_scope(patient.pk)) == stale  # it is cached
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {"code": HEART_RATE, "limit": "2"})
    assert [row["id"] for row in response.json()["results"]] == [readings["kept"].pk]
