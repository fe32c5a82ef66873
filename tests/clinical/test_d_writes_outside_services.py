"""A write of patient data made outside services.py (a data fix in `manage.py shell`: a save, a queryset update or
delete, a bulk_create) invalidates the cached reads as the services' writes do: before, the cards, vitals and lists
cached before it were served for their TTL (30 min for a patient card)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.caching.models import CacheScopeGeneration
from apps.clinical import loader
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient
from apps.clinical.services import observation_record, patient_soft_delete
from tests.clinical.support import LOAD_END

pytestmark = pytest.mark.django_db


def _bumps(queries) -> int:
    """Scopes bumped: one statement bumps them all (an array of their keys)."""
    table = CacheScopeGeneration._meta.db_table
    # The upsert, led on PostgreSQL by the restore watermark's draw (WITH d AS (SELECT nextval(...)) INSERT ...).
    bumps = [query["sql"] for query in queries if re.match(rf"(WITH d AS \(.*?\) )?INSERT INTO {table}", query["sql"])]
    return sum(len(re.search(r"unnest\('\{([^}]*)\}'", sql).group(1).split(",")) for sql in bumps)


def _vitals(clinician, patient) -> list[float]:
    return [o["value"] for o in clinician.get(f"/api/v1/patients/{patient.pk}/vitals/").json()["results"]]


def test_a_patient_saved_in_a_shell_is_read_as_saved(clinician, patient, elsewhere):
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "Müller"  # cached

    def fix():
        row = Patient.objects.get(pk=patient.pk)
        row.family_name = "Meyer"
        row.save()

    elsewhere(fix)
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "Meyer"
    elsewhere(lambda: Patient.objects.filter(pk=patient.pk).update(given_name="Berta"))
    assert clinician.get(f"/fhir/Patient/{patient.pk}").json()["name"][0]["given"] == ["Berta"]


def test_an_mrn_changed_in_a_shell_no_longer_finds_the_patient_under_the_old_one(clinician, patient, elsewhere):
    lookup = "/api/v1/patients/lookup/"
    assert clinician.post(lookup, {"mrn": "MRN-000123"}, format="json").json()["id"] == patient.pk  # cached

    def fix():
        row = Patient.objects.get(pk=patient.pk)
        row.mrn = "MRN-000124"
        row.save()

    elsewhere(fix)
    assert clinician.post(lookup, {"mrn": "MRN-000123"}, format="json").status_code == 404
    assert clinician.post(lookup, {"mrn": "MRN-000124"}, format="json").json()["id"] == patient.pk
    elsewhere(lambda: Patient.objects.filter(pk=patient.pk).update(mrn="MRN-000125"))
    assert clinician.post(lookup, {"mrn": "MRN-000124"}, format="json").status_code == 404


def test_readings_updated_deleted_or_added_in_bulk_are_in_the_next_read(clinician, patient, vitals, elsewhere):
    assert len(_vitals(clinician, patient)) == 8  # cached
    newest = Observation.objects.filter(patient=patient, code="8867-4").order_by("-effective_at", "-pk")[0]
    elsewhere(lambda: Observation.objects.filter(pk=newest.pk).update(status=Observation.Status.ENTERED_IN_ERROR))
    assert len(_vitals(clinician, patient)) == 7
    elsewhere(lambda: Observation.objects.filter(patient=patient, code="8310-5").delete())
    assert len(_vitals(clinician, patient)) == 3
    at = datetime.now(UTC) - timedelta(minutes=1)
    elsewhere(
        lambda: Observation.objects.bulk_create(
            [
                Observation(
                    patient=patient, category="vital-signs", code="8867-4", value=61, unit="/min", effective_at=at
                )
            ]
        )
    )
    assert _vitals(clinician, patient) == [61, 80, 90, 100]


@pytest.mark.parametrize("path", ["encounters/", "medications/"])
def test_lists_see_rows_written_in_a_shell(clinician, patient, elsewhere, path):
    url = f"/api/v1/patients/{patient.pk}/{path}"
    assert clinician.get(url).json()["results"] == []  # cached
    at = datetime.now(UTC) - timedelta(hours=1)
    if path == "encounters/":
        elsewhere(lambda: Encounter.objects.create(patient=patient, encounter_class="AMB", status="finished",
                                                   period_start=at))  # fmt: skip
    else:
        elsewhere(lambda: MedicationRequest.objects.create(patient=patient, rxnorm_code="197361", display="Amlodipine",
                                                           authored_at=at))  # fmt: skip
    assert len(clinician.get(url).json()["results"]) == 1


def test_a_services_write_bumps_each_scope_once(patient, django_capture_on_commit_callbacks):
    at = datetime.now(UTC) - timedelta(minutes=1)
    with CaptureQueriesContext(connection) as queries:
        observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    assert _bumps(queries) == 1  # the patient's scope: the signal's, not the signal's and the service's
    with CaptureQueriesContext(connection) as queries:
        patient_soft_delete(patient=patient)
    assert _bumps(queries) == 2  # the patient's scope and its MRN lookup's


def test_a_bulk_change_bumps_each_patient_once(patient, vitals):
    with CaptureQueriesContext(connection) as queries:
        Observation.objects.filter(patient=patient).update(status=Observation.Status.AMENDED)
        Observation.objects.filter(patient=patient, code="8310-5").delete()
        readings = list(Observation.objects.filter(patient=patient))
        for reading in readings:
            reading.value += 1
        Observation.objects.bulk_update(readings, ["value"], batch_size=2)
    assert _bumps(queries) == 3  # one for the update's 8 rows, one for the delete's 4, one for 2 batches of 2


def test_the_loaders_writers_bump_nothing(monkeypatch):
    """Every row of a load is a new patient's: nothing of theirs can be cached before the batch commits."""
    with CaptureQueriesContext(connection) as queries:
        loader.synthetic_patients_load(patients=4, days=1, seed=41, end=LOAD_END, batch_size=2)
    assert _bumps(queries) == 0
    monkeypatch.setattr(loader, "_copy_batch", loader._insert_batch)  # the embedded database's (bulk_create)
    with CaptureQueriesContext(connection) as queries:
        loader.synthetic_patients_load(patients=4, days=1, seed=42, end=LOAD_END, batch_size=2)
    assert _bumps(queries) == 0
    assert Encounter.objects.count() == 8
