"""An identifier system's percent-encoding is normalised (RFC 3986, 6.2.2.2): an encoded unreserved character
is the character (`/%6Drn` is `/mrn`) and other encoded octets differ in nothing but their hex's case (`%2f` is
`%2F`). Kept as typed, `http://hospital.example.org/%6Drn` and `http://hospital.example.org/mrn` were two
systems: the same MRN could be registered twice, and a lookup in the other spelling missed the patient.
Migration 0003 rewrites stored rows and lists, leaving them as they are, those whose spellings now collide."""

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
ENCODED = [
    "http://hospital.example.org/%6Drn",
    "http://hospital.example.org/%6drn",
    "http://%68ospital.example.org/m%72n",
]
SLASHED = "https://ids.example.org/a%2Fb"
migration = importlib.import_module("apps.clinical.migrations.0003_normalize_identifier_system_percent_encoding")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("http://hospital.example.org/%6Drn", SYSTEM),
        ("http://hospital.example.org/%6drn/", SYSTEM),
        ("https://ids.example.org/a%2fb", SLASHED),  # reserved: stays encoded, hex upper case
        (SLASHED, SLASHED),
        ("https://ids.example.org/a%2F", "https://ids.example.org/a%2F"),  # an encoded slash is no trailing slash
        ("https://ids.example.org/%7e%2D%5F%2e", "https://ids.example.org/~-_."),
        ("https://ids.example.org/caf%c3%a9", "https://ids.example.org/caf%C3%A9"),
        ("https://%49DS.example.org:%34%34%33/x", "https://ids.example.org/x"),  # host lower case, default port
        ("https://ids.example.org/x?q=%7e%3d", "https://ids.example.org/x?q=~%3D"),
        ("urn:%4FID:1.2%2E3", "urn:oid:1.2.3"),
        ("https://ids.example.org/%zz%4", "https://ids.example.org/%zz%4"),  # not an encoding: as typed
        ("https://ids.example.org/%2541", "https://ids.example.org/%2541"),  # `%25` is `%`: decoded once, never twice
    ],
)
def test_normalize_system_percent_encoding(raw, normal):
    assert normalize_system(raw) == normal
    assert normalize_system(normal) == normal


def _new(system: str, mrn: str = "MRN-1") -> dict:
    return {"mrn": mrn, "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01", "system": system}


@pytest.mark.parametrize(
    ("first", "again"), [(SYSTEM, ENCODED[0]), (ENCODED[1], SYSTEM), (SLASHED, "https://ids.example.org/a%2fb")]
)
def test_one_mrn_cannot_be_registered_again_in_an_encoded_spelling(clinician, first, again):
    created = clinician.post("/api/v1/patients/", _new(first), format="json")
    assert created.status_code == 201, created.content[:300]
    assert created.json()["identifier_system"] == normalize_system(first)
    refused = clinician.post("/api/v1/patients/", _new(again), format="json")
    assert refused.status_code == 400, refused.content[:300]
    assert "mrn" in refused.json()["errors"]
    assert Patient.objects.filter(mrn="MRN-1").count() == 1


@pytest.mark.parametrize("spelling", ENCODED)
def test_every_lookup_finds_the_patient_in_an_encoded_spelling(clinician, patient, spelling):
    found = clinician.post("/api/v1/patients/lookup/", {"mrn": patient.mrn, "system": spelling}, format="json")
    assert found.status_code == 200, found.content[:300]
    assert found.json()["id"] == patient.pk
    bundle = Bundle.model_validate(clinician.get("/fhir/Patient", {"identifier": f"{spelling}|{patient.mrn}"}).json())
    assert [entry.resource.id for entry in bundle.entry or []] == [str(patient.pk)]
    form = urlencode({"identifier": f"{spelling}|{patient.mrn}"})
    posted = clinician.post("/fhir/Patient/_search", form, content_type="application/x-www-form-urlencoded")
    assert posted.status_code == 200, posted.content[:300]
    bundle = Bundle.model_validate(posted.json())
    assert [entry.resource.id for entry in bundle.entry or []] == [str(patient.pk)]


def test_a_lookup_in_the_other_hex_case_finds_a_reserved_encoding(clinician):
    patient = patient_create(mrn="MRN-9", family_name="Doe", given_name="Jo", birth_date=date(1970, 1, 1),
                             identifier_system="https://ids.example.org/a%2fb")  # fmt: skip
    patient.refresh_from_db()
    assert patient.identifier_system == SLASHED
    for spelling in (SLASHED, "https://ids.example.org/a%2fb"):
        found = clinician.post("/api/v1/patients/lookup/", {"mrn": "MRN-9", "system": spelling}, format="json")
        assert found.status_code == 200, (spelling, found.content[:300])
        response = clinician.get("/fhir/Patient", {"identifier": f"{spelling}|MRN-9"})
        bundle = Bundle.model_validate(response.json())
        assert [entry.resource.id for entry in bundle.entry or []] == [str(patient.pk)]
    # `%2F` is not `/`: another system.
    missing = clinician.post("/api/v1/patients/lookup/", {"mrn": "MRN-9", "system": "https://ids.example.org/a/b"},
                             format="json")  # fmt: skip
    assert missing.status_code == 404


def _stored(system: str, mrn: str) -> Patient:
    """A row as an older release stored it: bulk_create skips save(), which normalises."""
    (row,) = Patient.objects.bulk_create([Patient(identifier_system=system, mrn=mrn, family_name="Doe",
                                                  given_name="Jo", birth_date=date(1970, 1, 1))])  # fmt: skip
    return row


def test_the_migration_normalises_encoded_rows_and_lists_collisions_untouched(db, caplog, capsys):
    lone = _stored(ENCODED[0], "MRN-LONE")
    lower_hex = _stored("https://ids.example.org/a%2fb", "MRN-LONE")
    clash = [_stored(SYSTEM, "MRN-DUP"), _stored(ENCODED[0], "MRN-DUP"), _stored(ENCODED[2], "MRN-DUP")]
    pair = [_stored("https://ids.example.org/a%2fb", "MRN-P"), _stored(SLASHED, "MRN-P")]
    untouched = {row.pk: row.identifier_system for row in clash + pair}
    with caplog.at_level(logging.WARNING, logger="apps.clinical.migrations"):
        left = migration.normalize_identifier_systems(django_apps, None)  # must not raise
    assert sorted(left) == sorted([[row.pk for row in clash], [row.pk for row in pair]])
    stored = dict(Patient.objects.values_list("pk", "identifier_system"))
    assert stored[lone.pk] == SYSTEM
    assert stored[lower_hex.pk] == SLASHED
    assert {pk: stored[pk] for pk in untouched} == untouched
    listed = caplog.text + capsys.readouterr().out
    assert "clinical 0003:" in listed
    assert all(str(row.pk) in listed for row in clash + pair)
    assert "MRN-DUP" not in listed and "MRN-P" not in listed  # ids and systems only: this reaches logs
    assert sorted(migration.normalize_identifier_systems(django_apps, None)) == sorted(left)
