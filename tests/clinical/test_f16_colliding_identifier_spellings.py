"""Rows migrations 0002/0003 left in an older spelling of their system, because normalising them would collide
with another patient's row (one MRN under `http://hospital.example.org/mrn` and `/%6Drn`). A lookup matched the
normal spelling only: typed as the second patient was registered, it answered the first, the wrong patient. A
lookup now matches every stored spelling of the system and answers 409 while more than one patient matches."""

import logging
from datetime import date

import pytest

from apps.clinical import selectors
from apps.clinical.models import Patient
from apps.clinical.services import patient_create, patient_soft_delete

pytestmark = pytest.mark.django_db

SYSTEM = "http://hospital.example.org/mrn"
ENCODED = "http://hospital.example.org/%6Drn"
SPELLINGS = [SYSTEM, ENCODED, "http://hospital.example.org/%6drn", "HTTP://Hospital.example.org/m%72n/"]
MRN = "COLL-1"


def _left_as(system: str, family: str) -> Patient:
    """A patient whose row keeps `system` as typed, as the migration leaves a colliding row: registered
    normally under a system of its own, then rewritten by a queryset update, which skips save()'s normalising."""
    placeholder = f"https://placeholder.example.org/{family.replace(' ', '')}"
    patient = patient_create(mrn=MRN, family_name=family, given_name="Jo", birth_date=date(1970, 1, 1),
                             identifier_system=placeholder)  # fmt: skip
    Patient.objects.filter(pk=patient.pk).update(identifier_system=system)
    return patient


def _lookup(client, system: str):
    return client.post("/api/v1/patients/lookup/", {"mrn": MRN, "system": system}, format="json")


@pytest.fixture
def colliding(db) -> tuple[Patient, Patient]:
    first = patient_create(mrn=MRN, family_name="Coll A", given_name="Jo", birth_date=date(1970, 1, 1),
                           identifier_system=SYSTEM)  # fmt: skip
    return first, _left_as(ENCODED, "Coll B")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_lookup_in_any_spelling_of_a_colliding_identifier_is_a_conflict(clinician, colliding, spelling, caplog):
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):  # the second from the cache, were anything cached
            refused = _lookup(clinician, spelling)
            assert refused.status_code == 409, (spelling, refused.content[:300])
            assert "ambiguous" in refused.json()["detail"]
            assert MRN not in refused.content.decode()
    assert MRN not in caplog.text


def test_the_selector_names_both_patients(colliding):
    first, second = colliding
    for spelling in SPELLINGS:
        assert [p.pk for p in selectors.patients_by_identifier(value=MRN, system=spelling)] == [first.pk, second.pk]
        with pytest.raises(selectors.AmbiguousIdentifier):
            selectors.patient_id_by_identifier(value=MRN, system=spelling)


def test_two_rows_both_left_in_older_spellings_are_found_by_the_normal_one(clinician):
    _left_as("HTTP://Hospital.example.org/mrn/", "Coll A")
    _left_as(ENCODED, "Coll B")
    assert _lookup(clinician, SYSTEM).status_code == 409


def test_a_lone_row_in_an_older_spelling_is_found_in_every_spelling(clinician):
    lone = _left_as(ENCODED, "Coll B")
    for spelling in SPELLINGS:
        found = _lookup(clinician, spelling)
        assert found.status_code == 200, (spelling, found.content[:300])
        assert found.json()["id"] == lone.pk


def test_once_resolved_the_remaining_patient_is_found(clinician, colliding):
    first, second = colliding
    assert _lookup(clinician, ENCODED).status_code == 409
    patient_soft_delete(patient=Patient.objects.get(pk=second.pk))
    for spelling in SPELLINGS:
        found = _lookup(clinician, spelling)
        assert found.status_code == 200, (spelling, found.content[:300])
        assert found.json()["id"] == first.pk


def test_other_systems_and_mrns_are_not_matched(clinician, colliding):
    patient_create(mrn=MRN, family_name="Other", given_name="Jo", birth_date=date(1970, 1, 1),
                   identifier_system="urn:oid:1.2.3")  # fmt: skip
    found = clinician.post("/api/v1/patients/lookup/", {"mrn": MRN, "system": "urn:oid:1.2.3"}, format="json")
    assert found.status_code == 200
    assert found.json()["family_name"] == "Other"
    missing = clinician.post("/api/v1/patients/lookup/", {"mrn": "COLL-2", "system": SYSTEM}, format="json")
    assert missing.status_code == 404


def test_the_stored_spellings_a_fhir_identifier_search_matches(colliding):
    for spelling in SPELLINGS:
        assert selectors.identifier_system_spellings(value=MRN, system=spelling) == sorted([SYSTEM, ENCODED])
    assert selectors.identifier_system_spellings(value="COLL-2", system=ENCODED) == [SYSTEM]
