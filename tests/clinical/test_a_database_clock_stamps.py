"""meta.lastUpdated comes from the database's clock on every write on PostgreSQL (models.StampField), and the row in
memory holds the stamp the database wrote, returned by the write itself (RETURNING, an INSERT's and an UPDATE's).

The app host's clock runs 5 s behind the database's here: the test patches django.utils.timezone.now (what
auto_now, the services and the views read) to the database's clock minus 5 s. That stands in for another host's
clock, legitimately, without touching the system clock. Before, save() stamped the host's clock: a row stamped by
a trigger (the database's clock) and then saved went back 5 s, and a `_lastUpdated=gt<last seen>` sync missed it."""

from datetime import date, datetime, timedelta
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from apps.clinical import services
from apps.clinical.api import views as api_views
from apps.clinical.codes import VITAL_PANEL
from apps.clinical.fhir.resources import version_id
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite (`make run`, one host) keeps the app clock"),
]

BEHIND = timedelta(seconds=5)


def _database_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


@pytest.fixture
def host_behind():
    """This host's clock: the database's, 5 s behind."""
    real_now = timezone.now
    offset = _database_now() - real_now() - BEHIND
    with mock.patch("django.utils.timezone.now", lambda: real_now() + offset):
        here = timezone.now()
        assert _database_now() - here >= BEHIND
        yield


def _stored(row) -> datetime:
    return type(row).objects.values_list("updated_at", flat=True).get(pk=row.pk)


def _parsed(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


def test_a_save_after_a_triggers_stamp_does_not_go_back(clinician, patient, host_behind, elsewhere):
    at = timezone.now() - timedelta(hours=1)
    panel = Observation.objects.create(patient=patient, category="vital-signs", code=VITAL_PANEL, value=None,
                                       unit="", effective_at=at)  # fmt: skip
    heart = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at)

    def retract_in_sql():  # the trigger (migration 0006) stamps the panel from the database's clock
        with connection.cursor() as cursor:
            cursor.execute("UPDATE clinical_observation SET status = 'entered-in-error' WHERE id = %s", [heart.pk])

    elsewhere(retract_in_sql)
    first = clinician.get(f"/fhir/Observation/{panel.pk}")
    seen = first.json()["meta"]["lastUpdated"]
    row = Observation.objects.get(pk=panel.pk)

    def amend():
        row.status = Observation.Status.AMENDED
        row.save()  # this host: auto_now

    elsewhere(amend)
    assert row.updated_at > _parsed(seen)  # was 5 s below the trigger's stamp
    assert row.updated_at == _stored(row)  # what the database wrote, not this host's clock
    fresh = clinician.get(f"/fhir/Observation/{panel.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200 and fresh.json()["meta"]["lastUpdated"] > seen
    query = urlencode({"patient": patient.pk, "_lastUpdated": f"gt{seen}", "status": "amended"})
    found = clinician.get(f"/fhir/Observation?{query}").json()
    assert [entry["resource"]["id"] for entry in found.get("entry", [])] == [str(panel.pk)]  # was none: missed


def _patient_update(patient):
    patient.family_name = "Schmidt"
    patient.save()
    return patient


def _observation_retract(patient):
    at = timezone.now() - timedelta(minutes=30)
    reading = services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at)
    return services.observation_retract(patient=patient, observation_id=reading.pk)[0]


def _encounter_written(patient):
    encounter = Encounter.objects.create(patient=patient, encounter_class="AMB", status="in-progress",
                                         period_start=timezone.now() - timedelta(hours=2))  # fmt: skip
    encounter.status = Encounter.Status.FINISHED
    encounter.save(update_fields=["status"])
    return encounter


def _medication_written(patient):
    request = MedicationRequest.objects.create(patient=patient, rxnorm_code="197361", display="Amlodipine",
                                               authored_at=timezone.now() - timedelta(hours=2))  # fmt: skip
    request.status = MedicationRequest.Status.STOPPED
    request.save()
    return request


def _bulk_created(patient):
    reading = Observation(patient=patient, category="vital-signs", code="8867-4", value=61, unit="/min",
                          effective_at=timezone.now() - timedelta(minutes=1))  # fmt: skip
    return Observation.objects.bulk_create([reading])[0]


WRITES = {
    "patient create": lambda patient: services.patient_create(
        mrn="MRN-000456", family_name="Weber", given_name="Lena", birth_date=date(1980, 1, 2)
    ),
    "patient update": _patient_update,
    "patient soft delete": lambda patient: services.patient_soft_delete(patient=patient),
    "observation record": lambda patient: services.observation_record(
        patient=patient, code="8310-5", value=36.6, effective_at=timezone.now() - timedelta(minutes=10)
    ),
    "observation retract": _observation_retract,
    "encounter create and save": _encounter_written,
    "medication request create and save": _medication_written,
    "bulk create": lambda patient: _bulk_created(patient),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_is_stamped_by_the_database_clock(patient, host_behind, write):
    started = _database_now()
    row = WRITES[write](patient)
    assert isinstance(row.updated_at, datetime)
    assert row.updated_at >= started  # was this host's clock: 5 s before it
    assert row.updated_at == _stored(row)  # in memory: exactly what the database wrote


def test_the_api_answers_carry_the_stamp_a_following_read_serves(clinician, host_behind):
    started = _database_now()
    body = {"mrn": "MRN-000789", "family_name": "Weber", "given_name": "Lena", "birth_date": "1980-01-02"}
    created = clinician.post("/api/v1/patients/", body, format="json")
    assert created.status_code == 201
    stamp = created.json()["updated_at"]
    assert _parsed(stamp) >= started  # was 5 s before it
    patient_id = created.json()["id"]
    assert clinician.get(f"/api/v1/patients/{patient_id}/").json()["updated_at"] == stamp
    read = clinician.get(f"/fhir/Patient/{patient_id}")
    assert read.json()["meta"]["lastUpdated"] == stamp
    assert read["ETag"] == f'W/"{version_id(_parsed(stamp))}"'

    reading = {"code": "8867-4", "value": 70, "effective_at": (timezone.now() - timedelta(minutes=5)).isoformat()}
    recorded = clinician.post(f"/api/v1/patients/{patient_id}/vitals/", reading, format="json")
    assert recorded.status_code == 201
    observation = Observation.objects.get(pk=recorded.json()["id"])
    first = clinician.get(f"/fhir/Observation/{observation.pk}")
    assert _parsed(first.json()["meta"]["lastUpdated"]) >= started
    url = f"/api/v1/patients/{patient_id}/vitals/{observation.pk}/"
    retracted = clinician.patch(url, {"status": "entered-in-error"}, format="json")
    assert retracted.status_code == 200 and retracted.json()["status"] == "entered-in-error"
    fresh = clinician.get(f"/fhir/Observation/{observation.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert fresh.status_code == 200
    assert fresh.json()["meta"]["lastUpdated"] > first.json()["meta"]["lastUpdated"]


def test_a_created_patients_201_pairs_its_fields_with_their_own_version(clinician, monkeypatch):
    """A write right after the create's commit (another request's) is not in the 201: the stamp came back with the
    create's INSERT, not from a read after it (a reverted fix read it later, so a conditional read 304'd a stale
    name)."""
    real_patient_json = api_views.patient_json

    def after_another_write(patient):
        Patient.objects.filter(pk=patient.pk).update(family_name="Later", updated_at=patient.updated_at + BEHIND)
        return real_patient_json(patient)

    monkeypatch.setattr(api_views, "patient_json", after_another_write)
    body = {"mrn": "MRN-000790", "family_name": "Weber", "given_name": "Lena", "birth_date": "1980-01-02"}
    created = clinician.post("/api/v1/patients/", body, format="json").json()
    assert created["family_name"] == "Weber"
    etag = f'W/"{version_id(_parsed(created["updated_at"]))}"'
    fresh = clinician.get(f"/fhir/Patient/{created['id']}", HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200 and fresh.json()["name"][0]["family"] == "Later"
