"""Synthetic histories end where the stay does: a discharged patient had vital signs, labs and orders charted
after the discharge, up to the end of the whole load. And a `--end` without an offset is a wall-clock time in
TIME_ZONE, as everywhere else in Django, not UTC."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Max

from apps.clinical.models import Observation
from apps.clinical.synthetic import generate_patient

END = datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_a_discharged_patient_is_charted_no_later_than_the_discharge():
    discharged = 0
    for index in range(200):
        record = generate_patient(seed=3, index=index, end=END, days=3, rounds_per_day=4)
        discharge = record.encounter.period_end
        if discharge is None:
            continue
        discharged += 1
        assert all(observation.effective_at <= discharge for observation in record.observations), index
        assert all(medication.authored_at <= discharge for medication in record.medications), index
    assert discharged > 50  # the sample holds discharges to check


@pytest.mark.django_db
def test_a_naive_end_is_read_in_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"  # noon there is 17:00 UTC
    call_command("load_synthetic", "--patients", "20", "--days", "1", "--end", "2025-03-01T12:00:00",
                 "--no-progress", "--workers", "1", stdout=StringIO(), stderr=StringIO())  # fmt: skip
    newest = Observation.objects.aggregate(newest=Max("effective_at"))["newest"]
    # The last round is charted about six hours before the end: after 10:00 UTC for an end at 17:00 UTC,
    # before 06:30 UTC had the end been read as noon UTC.
    assert datetime(2025, 3, 1, 10, tzinfo=UTC) < newest <= datetime(2025, 3, 1, 17, tzinfo=UTC)
