"""More spellings of one identifier system (F5, F6): a URN's namespace identifier in another case (`urn:OID:...`
is `urn:oid:...`, RFC 8141), a default port (`http://example.org:80/mrn`), a host's trailing dot
(`example.org.`) each let one MRN be registered twice; and trailing slashes were stripped from the query and
fragment too (`.../mrn/?x=/` was stored as `.../mrn?x=`), changing what the system names. Percent-encoding is
normalised too (test_b2_percent_encoded_systems.py). Migration 0002 uses the live normalize_system, so it lists
these collisions too."""

import importlib
from datetime import date

import pytest
from django.apps import apps as django_apps

from apps.clinical.identifiers import normalize_system
from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db

migration = importlib.import_module("apps.clinical.migrations.0002_normalize_identifier_systems")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("urn:OID:2.16.840.1", "urn:oid:2.16.840.1"),
        ("URN:Oid:2.16.840.1", "urn:oid:2.16.840.1"),
        ("urn:isbn:ABC", "urn:isbn:ABC"),  # the namespace-specific string keeps its case
        ("http://example.org:80/mrn", "http://example.org/mrn"),
        ("https://example.org:443/mrn/", "https://example.org/mrn"),
        ("http://example.org:/mrn", "http://example.org/mrn"),  # an empty port
        ("https://example.org:80/mrn", "https://example.org:80/mrn"),  # not https's default: kept
        ("http://example.org:8080/mrn", "http://example.org:8080/mrn"),
        ("http://Example.ORG./mrn", "http://example.org/mrn"),
        ("http://[::1]:80/mrn", "http://[::1]/mrn"),
        ("http://[::1]:8080/mrn/", "http://[::1]:8080/mrn"),
        ("http://[::1]/mrn", "http://[::1]/mrn"),
        ("https://User@Example.org.:443/x", "https://User@example.org/x"),
        ("http://example.org/mrn/?x=/", "http://example.org/mrn?x=/"),  # only the path loses its slashes
        ("http://example.org/mrn/#part/", "http://example.org/mrn#part/"),
        ("http://example.org/mrn?x=//", "http://example.org/mrn?x=//"),
        ("urn:oid:1.2.3/?+r/", "urn:oid:1.2.3?+r/"),
        ("http://example.org/%7Emrn", "http://example.org/~mrn"),  # an encoded unreserved character is itself
    ],
)
def test_normalize_system(raw, normal):
    assert normalize_system(raw) == normal
    assert normalize_system(normal) == normal  # a normal spelling is its own


def _new(system: str) -> dict:
    return {"mrn": "MRN-R1", "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01", "system": system}


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ("urn:oid:2.16.840.1", "urn:OID:2.16.840.1"),
        ("http://example.org/mrn", "http://example.org:80/mrn"),
        ("https://example.org/mrn", "https://example.org:443/mrn"),
        ("http://example.org/mrn", "http://example.org./mrn"),
    ],
)
def test_one_mrn_cannot_be_registered_again_in_another_spelling(clinician, first, again):
    created = clinician.post("/api/v1/patients/", _new(first), format="json")
    assert created.status_code == 201, created.content[:300]
    refused = clinician.post("/api/v1/patients/", _new(again), format="json")
    assert refused.status_code == 400, refused.content[:300]
    assert "mrn" in refused.json()["errors"]
    assert Patient.objects.filter(mrn="MRN-R1").count() == 1
    found = clinician.post("/api/v1/patients/lookup/", {"mrn": "MRN-R1", "system": again}, format="json")
    assert (found.status_code, found.json().get("id")) == (200, created.json()["id"])


def _stored(system: str, mrn: str) -> Patient:
    """A row as an older release stored it: bulk_create skips save(), which normalises."""
    (row,) = Patient.objects.bulk_create([Patient(identifier_system=system, mrn=mrn, family_name="Doe",
                                                  given_name="Jo", birth_date=date(1970, 1, 1))])  # fmt: skip
    return row


def test_the_migration_lists_these_collisions_and_normalises_the_rest(db):
    clash = [_stored("urn:oid:2.16.840.1", "MRN-DUP"), _stored("urn:OID:2.16.840.1", "MRN-DUP")]
    lone = _stored("http://example.org.:80/mrn/", "MRN-LONE")
    query = _stored("http://example.org/mrn/?x=/", "MRN-Q")
    untouched = {row.pk: row.identifier_system for row in clash}
    left = migration.normalize_identifier_systems(django_apps, None)  # must not raise
    assert left == [[row.pk for row in clash]]
    stored = dict(Patient.objects.values_list("pk", "identifier_system"))
    assert {pk: stored[pk] for pk in untouched} == untouched
    assert (stored[lone.pk], stored[query.pk]) == ("http://example.org/mrn", "http://example.org/mrn?x=/")
