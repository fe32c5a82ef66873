"""An MRN changed on a row read without it (`only("id")`) or after `refresh_from_db()` no longer finds the patient
under the old one: the old lookup stayed cached (30 min), since the row's MRN as read was unknown (deferred) or
stale (refresh_from_db did not update it), so the save bumped only the new MRN's lookup."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.caching.stack import default_stack
from apps.clinical.models import Observation, Patient

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/patients/lookup/"


@pytest.fixture
def elsewhere(django_capture_on_commit_callbacks):
    def write(change):
        with django_capture_on_commit_callbacks(execute=True):
            change()
        default_stack().clear_local()  # read as another process would

    return write


def _found(clinician, mrn: str) -> int | None:
    response = clinician.post(LOOKUP, {"mrn": mrn}, format="json")
    return response.json()["id"] if response.status_code == 200 else None


def test_an_mrn_saved_on_a_row_read_without_it(clinician, patient, elsewhere):
    assert _found(clinician, "MRN-000123") == patient.pk  # cached

    def fix():
        row = Patient.objects.only("id").get(pk=patient.pk)
        row.mrn = "MRN-DEFERRED"
        row.save()

    elsewhere(fix)
    assert _found(clinician, "MRN-000123") is None
    assert _found(clinician, "MRN-DEFERRED") == patient.pk


def test_an_mrn_saved_after_refresh_from_db(clinician, patient, elsewhere):
    row = Patient.objects.get(pk=patient.pk)
    elsewhere(lambda: Patient.objects.filter(pk=patient.pk).update(mrn="MRN-000124"))
    assert _found(clinician, "MRN-000124") == patient.pk  # cached under the MRN it has now

    def fix():
        row.refresh_from_db()
        row.mrn = "MRN-000125"
        row.save()

    elsewhere(fix)
    assert _found(clinician, "MRN-000124") is None
    assert _found(clinician, "MRN-000125") == patient.pk


def test_a_reading_moved_on_a_row_read_without_its_patient(clinician, patient, vitals, elsewhere):
    other = Patient.objects.create(mrn="MRN-9", family_name="B", given_name="C", birth_date="1980-01-01")
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    assert len(clinician.get(url).json()["results"]) == 8  # cached

    def fix():
        reading = Observation.objects.only("id").get(pk=vitals[0].pk)
        reading.patient_id = other.pk
        reading.save()

    elsewhere(fix)
    assert len(clinician.get(url).json()["results"]) == 7


def test_a_save_of_a_row_read_whole_reads_nothing_more(patient):
    row = Patient.objects.get(pk=patient.pk)
    row.mrn = "MRN-000126"
    with CaptureQueriesContext(connection) as queries:
        row.save()
    assert not [q for q in queries if q["sql"].startswith("SELECT")]
