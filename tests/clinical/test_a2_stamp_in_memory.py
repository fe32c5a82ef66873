"""A row in memory never keeps StampField's expression as `updated_at` (review g, finding 2): `version_id()` of it
raised TypeError, and a cache would pickle it as the row's stamp."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.clinical import services
from apps.clinical.fhir.resources import version_id
from apps.clinical.models import Observation, Patient

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stamps from the app's clock"),
]


def _reading(patient) -> Observation:
    return Observation(patient=patient, category="vital-signs", code="8867-4", value=61, unit="/min",
                       effective_at=timezone.now() - timedelta(minutes=3))  # fmt: skip


def test_a_row_bulk_create_ignore_conflicts_returns_nothing_for(patient):
    [row] = Observation.objects.bulk_create([_reading(patient)], ignore_conflicts=True)
    assert row.updated_at == datetime(1970, 1, 1, tzinfo=UTC)  # models.UNRETURNED_STAMP
    assert version_id(row.updated_at) == "0"
    stored = Observation.objects.get(patient=patient, code="8867-4").updated_at
    assert stored > row.updated_at  # the row was written, with the database's stamp


def test_a_bulk_create_that_fails_restores_the_previous_stamp(patient):
    kept = services.observation_record(patient=patient, code="8867-4", value=70,
                                       effective_at=timezone.now() - timedelta(hours=1))  # fmt: skip
    before = kept.updated_at
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.bulk_create([kept])  # its id exists
    assert kept.updated_at == before


def test_a_save_that_fails_restores_the_previous_stamp(patient):
    other = services.patient_create(mrn="MRN-000999", family_name="X", given_name="Y", birth_date=date(1980, 1, 1))
    before = other.updated_at
    other.mrn = patient.mrn  # unique within its system
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()
    assert isinstance(other.updated_at, datetime) and other.updated_at == before
    version_id(other.updated_at)


def test_a_deferred_stamp_stays_deferred_after_a_failed_save(patient):
    other = services.patient_create(mrn="MRN-000998", family_name="X", given_name="Y", birth_date=date(1980, 1, 1))
    stored = other.updated_at
    other = Patient.objects.only("mrn").get(pk=other.pk)
    other.mrn = patient.mrn
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save()
    assert "updated_at" in other.get_deferred_fields()
    assert other.updated_at == stored  # read from the row, which the failed save left as it was
