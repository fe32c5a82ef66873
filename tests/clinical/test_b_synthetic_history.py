"""A synthetic history longer than an infant's life (`load_synthetic --days 60`: the youngest patients are 18 days
old at the end) began before the patient was born: encounters, vital signs and prescriptions dated before the
birth date, which the product's own write path (observation_record) refuses as impossible."""

from datetime import UTC, datetime, time

import pytest

from apps.clinical.synthetic import generate_patient

END = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("days", [2, 60, 3650])
def test_no_history_starts_before_the_patient_was_born(days):
    for index in range(300):
        record = generate_patient(seed=1, index=index, end=END, days=days, rounds_per_day=1)
        born = datetime.combine(record.patient.birth_date, time.min, UTC)
        assert record.encounter.period_start >= born, (index, record.patient.birth_date)
        assert all(o.effective_at >= born for o in record.observations), index
        assert all(m.authored_at >= born for m in record.medications), index
        assert record.patient.birth_date <= END.date()


def test_a_history_within_the_patients_life_keeps_the_birth_date():
    # What every load of a history shorter than the youngest age (18 days) generated stays as it was.
    for index in range(300):
        births = {
            generate_patient(seed=1, index=index, end=END, days=days, rounds_per_day=1).patient.birth_date
            for days in (1, 7, 17)
        }
        assert len(births) == 1, index
