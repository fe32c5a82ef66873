"""An empty panel's version (ETag, meta.versionId, meta.lastUpdated, `_lastUpdated`) moves when one of its members
is deleted (ORM, queryset, raw SQL) or moved to another instant, code, category or patient (`.update()`, raw SQL),
the writes outside the services that migration 0007's PostgreSQL triggers stamp: before it, a conditional read
answered 304 with the old hasMember and a `_lastUpdated` sync missed the panel."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from apps.clinical import services
from apps.clinical.codes import BP_PANEL, VITAL_PANEL
from apps.clinical.models import Observation

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's triggers (migration 0007)"),
]


def _panel(patient, code, at):
    return Observation.objects.create(patient=patient, category="vital-signs", code=code, value=None, unit="",
                                      effective_at=at)  # fmt: skip


@pytest.fixture
def rounds(patient):
    """Two rounds of vitals an hour and half an hour ago, each with its empty panels, as the loader writes them."""
    at = timezone.now() - timedelta(hours=1)
    later = at + timedelta(minutes=30)
    return {
        "vitals": _panel(patient, VITAL_PANEL, at),
        "pressure": _panel(patient, BP_PANEL, at),
        "heart": services.observation_record(patient=patient, code="8867-4", value=70, effective_at=at),
        "systolic": services.observation_record(patient=patient, code="8480-6", value=120, effective_at=at),
        "later_vitals": _panel(patient, VITAL_PANEL, later),
        "temperature": services.observation_record(patient=patient, code="8310-5", value=36.6, effective_at=later),
    }


@pytest.fixture
def other_patient(db):
    return services.patient_create(mrn="MRN-000777", family_name="Weber", given_name="Lena",
                                   birth_date=timezone.now().date() - timedelta(days=9000))  # fmt: skip


def _read(clinician, row, etag=None):
    headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
    return clinician.get(f"/fhir/Observation/{row.pk}", **headers)


def _members(response) -> set[str]:
    return {member["reference"] for member in response.json().get("hasMember", [])}


def _etags(clinician, *rows) -> dict[int, str]:
    return {row.pk: _read(clinician, row)["ETag"] for row in rows}


def _raw(sql, *params):
    def write():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    return write


DELETES = {
    "orm": lambda heart: Observation.objects.get(pk=heart.pk).delete(),
    "queryset": lambda heart: Observation.objects.filter(pk=heart.pk).delete(),
    "raw": lambda heart: _raw("DELETE FROM clinical_observation WHERE id = %s", heart.pk)(),
}


@pytest.mark.parametrize("how", sorted(DELETES))
def test_deleting_a_member_moves_its_panels_version(clinician, patient, rounds, elsewhere, how):
    vitals, pressure, heart = rounds["vitals"], rounds["pressure"], rounds["heart"]
    etags = _etags(clinician, vitals, pressure)
    assert f"Observation/{heart.pk}" in _members(_read(clinician, vitals))
    since = timezone.now()
    elsewhere(lambda: DELETES[how](heart))

    fresh = _read(clinician, vitals, etags[vitals.pk])
    assert fresh.status_code == 200  # was 304: the deleted reading confirmed as a member
    assert f"Observation/{heart.pk}" not in _members(fresh) and fresh["ETag"] != etags[vitals.pk]
    assert _read(clinician, pressure, etags[pressure.pk]).status_code == 304  # a heart rate is none of its members
    query = urlencode({"patient": patient.pk, "_lastUpdated": f"gt{since.isoformat()}"})
    found = clinician.get(f"/fhir/Observation?{query}").json()
    assert [entry["resource"]["id"] for entry in found.get("entry", [])] == [str(vitals.pk)]


MOVES = {
    "orm": lambda heart, to: Observation.objects.filter(pk=heart.pk).update(effective_at=to),
    "raw": lambda heart, to: _raw("UPDATE clinical_observation SET effective_at = %s WHERE id = %s", to, heart.pk)(),
}


@pytest.mark.parametrize("how", sorted(MOVES))
def test_moving_a_member_to_another_instant_moves_both_places_panels(clinician, rounds, elsewhere, how):
    vitals, later_vitals = rounds["vitals"], rounds["later_vitals"]
    pressure, heart = rounds["pressure"], rounds["heart"]
    etags = _etags(clinician, vitals, later_vitals, pressure)
    elsewhere(lambda: MOVES[how](heart, later_vitals.effective_at))

    left = _read(clinician, vitals, etags[vitals.pk])
    assert left.status_code == 200 and f"Observation/{heart.pk}" not in _members(left)  # was 304
    joined = _read(clinician, later_vitals, etags[later_vitals.pk])
    assert joined.status_code == 200 and f"Observation/{heart.pk}" in _members(joined)  # was 304
    assert _read(clinician, pressure, etags[pressure.pk]).status_code == 304


def test_a_member_recoded_moves_the_panel_it_leaves(clinician, rounds, elsewhere):
    pressure, systolic = rounds["pressure"], rounds["systolic"]
    etag = _etags(clinician, pressure)[pressure.pk]
    elsewhere(lambda: Observation.objects.filter(pk=systolic.pk).update(code="8867-4", unit="/min"))
    fresh = _read(clinician, pressure, etag)
    assert fresh.status_code == 200 and _members(fresh) == set()  # was 304, naming the systolic pressure


def test_a_member_moved_to_another_category_moves_its_panel(clinician, rounds, elsewhere):
    vitals, heart = rounds["vitals"], rounds["heart"]
    etag = _etags(clinician, vitals)[vitals.pk]
    elsewhere(lambda: Observation.objects.filter(pk=heart.pk).update(category="laboratory"))
    fresh = _read(clinician, vitals, etag)
    assert fresh.status_code == 200 and f"Observation/{heart.pk}" not in _members(fresh)  # was 304


def test_a_member_moved_to_another_patient_moves_both_patients_panels(clinician, rounds, other_patient, elsewhere):
    vitals, heart = rounds["vitals"], rounds["heart"]
    theirs = _panel(other_patient, VITAL_PANEL, vitals.effective_at)
    etags = _etags(clinician, vitals, theirs)
    elsewhere(_raw("UPDATE clinical_observation SET patient_id = %s WHERE id = %s", other_patient.pk, heart.pk))

    left = _read(clinician, vitals, etags[vitals.pk])
    assert left.status_code == 200 and f"Observation/{heart.pk}" not in _members(left)  # was 304
    joined = _read(clinician, theirs, etags[theirs.pk])
    assert joined.status_code == 200 and _members(joined) == {f"Observation/{heart.pk}"}  # was 304, no member


def test_a_members_new_value_leaves_its_panels_version(clinician, rounds, elsewhere):
    """hasMember names readings, not their values: a corrected value is no new panel version."""
    vitals, heart = rounds["vitals"], rounds["heart"]
    etag = _etags(clinician, vitals)[vitals.pk]
    elsewhere(lambda: Observation.objects.filter(pk=heart.pk).update(value=71))
    assert _read(clinician, vitals, etag).status_code == 304


def test_a_patients_readings_deleted_at_once_leave_other_patients_panels(clinician, patient, rounds, other_patient,
                                                                         elsewhere):  # fmt: skip
    """A hard delete: every reading of the patient in one DELETE (its panels with them), then the patient."""
    theirs = _panel(other_patient, VITAL_PANEL, rounds["vitals"].effective_at)
    services.observation_record(patient=other_patient, code="8867-4", value=64, effective_at=theirs.effective_at)
    etag = _etags(clinician, theirs)[theirs.pk]

    def hard_delete():
        Observation.objects.filter(patient=patient).delete()
        patient.delete()

    elsewhere(hard_delete)
    assert not Observation.objects.filter(patient_id=patient.pk).exists()
    assert _read(clinician, theirs, etag).status_code == 304
