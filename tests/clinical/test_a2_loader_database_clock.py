"""The loader's patients are stamped by the database's clock, as its observations are (review g, finding 1): the
patient COPY wrote the loading host's clock, so with that clock behind a `_lastUpdated=gt<last seen>` sync missed
the loaded patients."""

from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.db import connection

from apps.clinical import loader
from apps.clinical.models import Observation, Patient
from tests.clinical.support import LOAD_END

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the loader's COPY is PostgreSQL's"),
]


class _HostBehind(datetime):
    """The loading host's clock, 5 s behind the database's."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) - timedelta(seconds=5)


def test_loaded_patients_are_stamped_by_the_database_clock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        [(started,)] = cursor.fetchall()
    with mock.patch.object(loader, "datetime", _HostBehind):
        loader.synthetic_patients_load(patients=2, days=1, seed=7, end=LOAD_END, batch_size=10)
    stamps = list(Patient.objects.values_list("updated_at", flat=True))
    assert len(stamps) == 2 and Observation.objects.exists()
    assert all(stamp >= started for stamp in stamps), (started, stamps)
