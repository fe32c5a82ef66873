from datetime import date

import pytest

from apps.clinical.models import Patient
from apps.clinical.services import patient_create
from tests.reliability.test_d_database_restore import _rename


@pytest.fixture
def patient(db) -> Patient:
    """The restore tests' patient, renamed once: its scope has a generation row when the backup is taken, as most
    patients' do."""
    patient = patient_create(mrn="MRN-RESTORE-1", family_name="Before", given_name="Ann", birth_date=date(1970, 1, 2))
    _rename(patient, "Before")
    return patient
