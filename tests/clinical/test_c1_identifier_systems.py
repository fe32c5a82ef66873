"""An identifier system spelt with another case in its scheme or host, or with a trailing slash
(`HTTP://Hospital.example.org/mrn/` beside `http://hospital.example.org/mrn`), is the same system: three
patients could hold one MRN, one per spelling, and a lookup in another spelling missed the patient. Systems
are normalised when stored and when looked up (REST, FHIR GET and POST _search); migration 0002 normalises the
stored rows and lists, without touching them, those whose normal spellings would collide."""

import importlib
import logging
from datetime import date
from urllib.parse import urlencode

import pytest
from django.apps import apps as django_apps
from fhir.resources.R4B.bundle import Bundle

from apps.clinical.identifiers import normalize_system
from apps.clinical.models import Patient
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

SYSTEM = "http://hospital.example.org/mrn"
SPELLINGS = ["HTTP://Hospital.example.org/mrn/", "http://HOSPITAL.EXAMPLE.ORG/mrn", "http://hospital.example.org/mrn/"]
migration = importlib.import_module("apps.clinical.migrations.0002_normalize_identifier_systems")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTP://Hospital.example.org/mrn/", SYSTEM),
        (SYSTEM, SYSTEM),
        ("https://Example.ORG/Path/MRN//", "https://example.org/Path/MRN"),  # the path keeps its case
        ("https://User@Example.org:8443/x", "https://User@example.org:8443/x"),
        ("URN:oid:1.2.3", "urn:oid:1.2.3"),
    ],
)
def test_normalize_system(raw, normal):
    assert normalize_system(raw) == normal


def _new(system: str, mrn: str = "MRN-1") -> dict:
    return {"mrn": mrn, "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01", "system": system}


def test_one_mrn_cannot_be_registered_again_in_another_spelling(clinician):
    first = clinician.post("/api/v1/patients/", _new(SPELLINGS[0]), format="json")
    assert first.status_code == 201, first.content[:300]
    assert first.json()["identifier_system"] == SYSTEM
    for spelling in [SYSTEM, *SPELLINGS[1:]]:
        again = clinician.post("/api/v1/patients/", _new(spelling), format="json")
        assert again.status_code == 400, (spelling, again.content[:300])
        assert "mrn" in again.json()["errors"]
    assert Patient.objects.filter(mrn="MRN-1").count() == 1


def test_the_service_and_the_model_store_the_normal_spelling(db):
    patient = patient_create(mrn="MRN-2", family_name="Doe", given_name="Jo", birth_date=date(1970, 1, 1),
                             identifier_system="HTTPS://Other.Example.org/Ids/")  # fmt: skip
    patient.refresh_from_db()
    assert patient.identifier_system == "https://other.example.org/Ids"
    patient.identifier_system = "https://OTHER.example.org/Ids/"
    patient.save()
    patient.refresh_from_db()
    assert patient.identifier_system == "https://other.example.org/Ids"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_lookup_finds_the_patient_in_any_spelling(clinician, patient, spelling):
    found = clinician.post("/api/v1/patients/lookup/", {"mrn": patient.mrn, "system": spelling}, format="json")
    assert found.status_code == 200, found.content[:300]
    assert found.json()["id"] == patient.pk
    bundle = Bundle.model_validate(clinician.get("/fhir/Patient", {"identifier": f"{spelling}|{patient.mrn}"}).json())
    assert [entry.resource.id for entry in bundle.entry or []] == [str(patient.pk)]
    form = urlencode({"identifier": f"{spelling}|{patient.mrn}"})
    posted = clinician.post("/fhir/Patient/_search", form, content_type="application/x-www-form-urlencoded")
    bundle = Bundle.model_validate(posted.json())
    assert [entry.resource.id for entry in bundle.entry or []] == [str(patient.pk)]


def _stored(system: str, mrn: str) -> Patient:
    """A row as an older release stored it: bulk_create skips save(), which normalises."""
    (row,) = Patient.objects.bulk_create([Patient(identifier_system=system, mrn=mrn, family_name="Doe",
                                                  given_name="Jo", birth_date=date(1970, 1, 1))])  # fmt: skip
    return row


def test_the_migration_normalises_rows_and_lists_collisions_untouched(db, caplog, capsys):
    lone = _stored("HTTP://Hospital.example.org/mrn/", "MRN-LONE")
    oid = _stored("URN:oid:1.2.3", "MRN-LONE")
    clash = [_stored(SYSTEM, "MRN-DUP"), _stored("HTTP://Hospital.example.org/mrn/", "MRN-DUP"),
             _stored("http://hospital.example.org/mrn/", "MRN-DUP")]  # fmt: skip
    pair = [_stored("https://A.example.org/x/", "MRN-P"), _stored("https://a.EXAMPLE.org/x", "MRN-P")]
    untouched = {row.pk: row.identifier_system for row in clash + pair}
    with caplog.at_level(logging.WARNING, logger="apps.clinical.migrations"):
        left = migration.normalize_identifier_systems(django_apps, None)  # must not raise
    assert sorted(left) == sorted([[row.pk for row in clash], [row.pk for row in pair]])
    stored = dict(Patient.objects.values_list("pk", "identifier_system"))
    assert stored[lone.pk] == SYSTEM
    assert stored[oid.pk] == "urn:oid:1.2.3"
    assert {pk: stored[pk] for pk in untouched} == untouched
    listed = caplog.text + capsys.readouterr().out
    assert all(str(row.pk) in listed for row in clash + pair)
    assert "MRN-DUP" not in listed  # ids and systems only: this reaches logs
    # Run again (nothing new to do), it lists the same groups and still does not fail.
    assert sorted(migration.normalize_identifier_systems(django_apps, None)) == sorted(left)
