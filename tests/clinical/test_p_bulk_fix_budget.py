"""A bulk data fix costs a constant number of queries however many patients it touches, and a queryset delete
keeps Django's fast delete: before, each patient's scope was bumped by its own INSERT (4,200 patients: 12,618
queries for one update()), and the post_delete receivers made Django read every row before deleting it
(306k readings: 13 s and 500 MB where 0.3 s and 100 MB)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.caching.models import CacheScopeGeneration
from apps.caching.stack import default_stack
from apps.clinical.models import Observation, Patient

pytestmark = pytest.mark.django_db

PATIENTS = 300
READINGS = 20


@pytest.fixture
def many(db):
    patients = Patient.objects.bulk_create(
        Patient(mrn=f"BULK-{i}", family_name="B", given_name="C", birth_date="1980-01-01") for i in range(PATIENTS)
    )
    at = datetime.now(UTC) - timedelta(days=1)
    Observation.objects.bulk_create(
        (
            Observation(
                patient=p,
                category="vital-signs",
                code="8867-4",
                value=60 + n,
                unit="/min",
                effective_at=at + timedelta(minutes=n),
            )
            for p in patients
            for n in range(READINGS)
        ),
        batch_size=2000,
    )
    return patients


def _generation(scope: str) -> int:
    key = default_stack().scope_key(scope)
    return CacheScopeGeneration.objects.filter(scope=key).values_list("generation", flat=True).first() or 0


def test_a_bulk_update_of_many_patients_takes_a_few_queries(many):
    with CaptureQueriesContext(connection) as queries:
        Observation.objects.filter(patient__in=many).update(status=Observation.Status.AMENDED)
    assert len(queries) <= 4  # rows' patients, the update, one bump (of 300 scopes)
    first, last = _generation(f"patient:{many[0].pk}"), _generation(f"patient:{many[-1].pk}")
    with CaptureQueriesContext(connection) as queries:
        Patient.objects.filter(pk__in=[p.pk for p in many]).update(identifier_system="urn:oid:1.2.3")
    assert len(queries) <= 8  # ids, patients, lookups as they were, the update, as they are, one bump
    assert _generation(f"patient:{many[0].pk}") > first  # each scope bumped (once: the query count above)
    assert _generation(f"patient:{many[-1].pk}") > last


def test_a_queryset_delete_of_many_readings_reads_none_of_them(many):
    tracemalloc.start()
    try:
        with CaptureQueriesContext(connection) as queries:
            deleted, _ = Observation.objects.filter(patient__in=many).delete()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert deleted == PATIENTS * READINGS
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 1, selects  # the rows' distinct patients; Django's fast delete reads no row
    assert len(queries) <= 4
    assert peak < 5_000_000  # every row read as an instance took ~1.6 kB each


def test_a_deleted_reading_is_gone_from_the_next_read(clinician, patient, vitals, django_capture_on_commit_callbacks):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    assert len(clinician.get(url).json()["results"]) == 8  # cached
    with django_capture_on_commit_callbacks(execute=True):
        Observation.objects.get(pk=vitals[0].pk).delete()
    default_stack().clear_local()
    assert len(clinician.get(url).json()["results"]) == 7
