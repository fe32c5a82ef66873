"""A reading entered in error or cancelled is no reading: `latest=true` (REST) answered the retracted 300/min and
hid the valid 80/min taken before it, and so did FHIR's newest-first Observation search (`_count=1`). The latest
of each code skips them, compiled or not, cached or not; FHIR finds them when asked for by status."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from fhir.resources.R4B.bundle import Bundle

from apps.clinical import selectors
from apps.clinical.models import Observation
from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db
HEART_RATE, TEMPERATURE = "8867-4", "8310-5"


@pytest.fixture
def readings(patient):
    """A valid 80/min, then a 300/min retracted (entered in error), then a cancelled one, the newest."""
    now = datetime.now(UTC)
    valid = observation_record(patient=patient, code=HEART_RATE, value=80, effective_at=now - timedelta(hours=3))
    observation_record(patient=patient, code=HEART_RATE, value=300, effective_at=now - timedelta(hours=2),
                       status=Observation.Status.ENTERED_IN_ERROR)  # fmt: skip
    observation_record(patient=patient, code=HEART_RATE, value=150, effective_at=now - timedelta(hours=1),
                       status=Observation.Status.CANCELLED)  # fmt: skip
    observation_record(patient=patient, code=TEMPERATURE, value=39.9, unit="Cel", effective_at=now,
                       status=Observation.Status.ENTERED_IN_ERROR)  # fmt: skip
    return valid


def test_rest_latest_skips_retracted_and_cancelled_readings(clinician, patient, readings):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    for query in ({"latest": "true"}, {"latest": "true", "code": HEART_RATE}):
        for _ in range(2):  # the second through the vital_signs cache
            response = clinician.get(url, query)
            assert response.status_code == 200, response.content[:300]
            # The temperature has no reading at all: none is shown rather than the retracted 39.9.
            assert [(o["code"], o["value"], o["status"]) for o in response.json()["results"]] == [
                (HEART_RATE, 80.0, "final")
            ]
    # The plain list leaves them out too (test_r1_vitals_readings.py): the valid reading only.
    assert [o["value"] for o in clinician.get(url, {"code": HEART_RATE}).json()["results"]] == [80.0]


# 17 codes is past what is compiled: the plain ORM query.
@pytest.mark.parametrize("codes", [[HEART_RATE], [HEART_RATE, TEMPERATURE], [HEART_RATE, *map(str, range(16))]])
def test_the_selector_skips_them_compiled_or_not(patient, readings, codes):
    rows = selectors.latest_observations(patient_id=patient.pk, category="vital-signs", codes=codes)
    assert [row.pk for row in rows] == [readings.pk]


def test_the_fallback_without_distinct_on_skips_them(patient, readings, monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert [row.pk for row in selectors.latest_observations(patient_id=patient.pk)] == [readings.pk]


def test_fhir_newest_first_search_answers_the_valid_reading(clinician, patient, readings):
    query = {"patient": str(patient.pk), "code": HEART_RATE, "_sort": "-date", "_count": "1"}
    form = "application/x-www-form-urlencoded"
    for response in (
        clinician.get("/fhir/Observation", query),
        clinician.post("/fhir/Observation/_search", urlencode(query), content_type=form),
    ):
        assert response.status_code == 200, response.content[:300]
        bundle = Bundle.model_validate(response.json())
        assert [entry.resource.id for entry in bundle.entry] == [str(readings.pk)]
        assert bundle.entry[0].resource.valueQuantity.value == 80
    total = clinician.get("/fhir/Observation", {"patient": patient.pk, "_summary": "count"}).json()["total"]
    assert total == 1


def test_fhir_finds_them_when_asked_by_status(clinician, patient, readings):
    query = {"patient": patient.pk, "status": "entered-in-error,cancelled"}
    bundle = Bundle.model_validate(clinician.get("/fhir/Observation", query).json())
    assert sorted(entry.resource.status for entry in bundle.entry) == [
        "cancelled",
        "entered-in-error",
        "entered-in-error",
    ]
