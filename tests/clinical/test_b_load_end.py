"""`load_synthetic --end` far back (the command took any end from 1900 on) stored patients born up to a hundred years
before it: `--end 1950-01-01` loaded patients born in the 1850s, birth dates that `POST /api/v1/patients/` refuses
as impossible (before 1880). An end whose oldest patients would be born before then is refused before any write."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.clinical.management.commands.load_synthetic import EARLIEST_END
from apps.clinical.models import Patient
from apps.clinical.services import validate_birth_date
from apps.clinical.synthetic import generate_patient


@pytest.mark.django_db
@pytest.mark.parametrize("end", ["1950-01-01T00:00:00+00:00", "1905-06-01T00:00:00+00:00"])
def test_an_end_whose_oldest_patients_were_born_before_1880_is_refused(end):
    with pytest.raises(CommandError, match="--end"):
        call_command("load_synthetic", "--patients", "5", "--days", "1", "--end", end, "--no-progress",
                     stdout=StringIO())  # fmt: skip
    assert not Patient.objects.exists()


@pytest.mark.parametrize("days", [1, 20])
def test_every_patient_of_the_earliest_end_has_a_birth_date_the_product_accepts(days):
    assert datetime(1981, 1, 1, tzinfo=UTC) >= EARLIEST_END  # a load in 1981 is still possible
    for index in range(2000):
        validate_birth_date(generate_patient(seed=2, index=index, end=EARLIEST_END, days=days, rounds_per_day=1)
                            .patient.birth_date)  # fmt: skip
