"""A birth date is a day of the hospital's calendar (TIME_ZONE), as every date without a time is: "in the future"
is judged on that calendar, not on UTC's. East of UTC a baby born after local midnight was refused until UTC's
midnight; west of it, tomorrow's date was accepted for hours."""

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


def _register(birth_date: date, mrn: str):
    return patient_create(mrn=mrn, family_name="Newborn", given_name="Baby", birth_date=birth_date)


def test_a_baby_born_after_the_hospitals_midnight_is_registered_east_of_utc(settings, monkeypatch):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: 20:00 UTC on June 1st is 10:00 on June 2nd there
    # The clock is fixed (mocked) so the test does not depend on the hour it runs at.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 6, 1, 20, tzinfo=UTC))
    assert _register(date(2026, 6, 2), "MRN-KIR-1").birth_date == date(2026, 6, 2)
    with pytest.raises(ValidationError) as refused:
        _register(date(2026, 6, 3), "MRN-KIR-2")
    assert "birth_date" in refused.value.message_dict


def test_tomorrow_in_the_hospital_is_refused_west_of_utc(settings, monkeypatch):
    settings.TIME_ZONE = "Pacific/Pago_Pago"  # UTC-11: 05:00 UTC on June 1st is 18:00 on May 31st there
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 6, 1, 5, tzinfo=UTC))
    with pytest.raises(ValidationError) as refused:
        _register(date(2026, 6, 1), "MRN-PAGO-1")
    assert "birth_date" in refused.value.message_dict
    assert _register(date(2026, 5, 31), "MRN-PAGO-2").birth_date == date(2026, 5, 31)
