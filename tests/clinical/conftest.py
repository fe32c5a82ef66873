from datetime import UTC, date, datetime, timedelta

import pytest

from apps.caching.stack import default_stack
from apps.clinical.loader import synthetic_patients_load
from apps.clinical.models import Patient
from apps.clinical.services import observation_record, patient_create
from tests.clinical.support import LOAD_END


@pytest.fixture
def clinician(api, issue_token):
    """A clinical app holding every patient and clinical scope."""
    token = issue_token("patient:read", "patient:write", "clinical:read", "clinical:write", name="ward-app")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


@pytest.fixture
def patient(db) -> Patient:
    return patient_create(
        mrn="MRN-000123", family_name="Müller", given_name="Anna", birth_date=date(1970, 5, 4), sex="female"
    )


@pytest.fixture
def vitals(patient):
    now = datetime.now(UTC)
    rows = []
    for hours_ago in (30, 20, 10, 2):
        at = now - timedelta(hours=hours_ago)
        rows.append(observation_record(patient=patient, code="8867-4", value=70 + hours_ago, effective_at=at))
        rows.append(observation_record(patient=patient, code="8310-5", value=36.5, unit="Cel", effective_at=at))
    return rows


@pytest.fixture
def loaded(db):
    """Thirty synthetic patients with two days of history, loaded through the real loader (COPY)."""
    return synthetic_patients_load(patients=30, days=2, seed=7, end=LOAD_END, batch_size=10)


@pytest.fixture
def elsewhere(django_capture_on_commit_callbacks):
    """Run a write as a shell would (committed), then read as another process: its L1 never held the write."""

    def write(change):
        with django_capture_on_commit_callbacks(execute=True):
            change()
        default_stack().clear_local()

    return write
