"""The data plane's query patterns, each with the index designed to answer it.

`manage.py optimize database` EXPLAINs each against the live database with a real sample; the bench
(bench/clinical.py) times them. Keeping them here keeps the optimizer honest about what the API runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.selectors import audit_event_list
from apps.clinical import selectors
from apps.clinical.models import Encounter, MedicationRequest, Observation, Patient


@dataclass(frozen=True)
class Sample:
    patient_id: int
    mrn: str
    system: str
    family_prefix: str


@dataclass(frozen=True)
class QueryPattern:
    name: str
    description: str
    build: Callable[[Sample], QuerySet]
    # (model, index name) that should serve it; None for the primary key or a unique constraint.
    expected_index: tuple[type, str] | None


def _since_24h():
    return timezone.now() - timedelta(hours=24)


def _latest_vitals(sample: Sample) -> QuerySet:
    window = {"category": "vital-signs", "since": _since_24h()}
    if connection.vendor == "postgresql":
        return selectors.latest_observations_query(patient_id=sample.patient_id, **window)
    return selectors.observation_list(patient_id=sample.patient_id, **window)  # deduplicated in Python there


QUERY_PATTERNS: list[QueryPattern] = [
    QueryPattern(
        "patient_by_mrn",
        "Patient by MRN (unique system + MRN)",
        lambda s: Patient.objects.filter(identifier_system=s.system, mrn=s.mrn, is_deleted=False),
        None,
    ),
    QueryPattern(
        "patient_by_id", "Patient by id", lambda s: Patient.objects.filter(pk=s.patient_id, is_deleted=False), None
    ),
    QueryPattern(
        "patient_name_search",
        "Active patients by family-name prefix, first page in id order (common prefixes walk the primary "
        "key, rare ones use the prefix index)",
        lambda s: selectors.patient_search(family=s.family_prefix)[:50],
        (Patient, "clinical_patient_family"),
    ),
    QueryPattern(
        "vitals_latest_24h",
        "Latest value of every vital sign over the last 24 h",
        _latest_vitals,
        (Observation, "clinical_obs_patient_code"),
    ),
    QueryPattern(
        "vitals_series_one_code",
        "One vital sign's series, newest 100",
        lambda s: selectors.observation_list(patient_id=s.patient_id, codes=["8867-4"])[:100],
        (Observation, "clinical_obs_patient_code"),
    ),
    QueryPattern(
        "observations_by_category",
        "FHIR Observation?patient&category=vital-signs&_sort=-date&_count=10",
        lambda s: selectors.observation_list(patient_id=s.patient_id, category="vital-signs")[:10],
        (Observation, "clinical_obs_patient_cat"),
    ),
    QueryPattern(
        "encounters_by_patient",
        "A patient's encounters, newest first",
        lambda s: selectors.encounter_list(patient_id=s.patient_id)[:50],
        (Encounter, "clinical_encounter_patient"),
    ),
    QueryPattern(
        "active_medications",
        "A patient's active prescriptions",
        lambda s: selectors.medication_request_list(patient_id=s.patient_id, status="active")[:50],
        (MedicationRequest, "clinical_medreq_patient"),
    ),
    QueryPattern(
        "audit_by_patient",
        "Who accessed this patient, newest first",
        lambda s: audit_event_list(patient_id=s.patient_id).order_by("patient_id", "-recorded_at")[:50],
        None,
    ),
]


def pick_sample() -> Sample | None:
    """A real patient in the middle of the table, so plans reflect typical data, not an empty edge."""
    count = Patient.objects.filter(is_deleted=False).count()
    if not count:
        return None
    patient = Patient.objects.filter(is_deleted=False).order_by("pk")[count // 2]
    return Sample(patient.pk, patient.mrn, patient.identifier_system, patient.family_search[:3])
