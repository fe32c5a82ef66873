"""An Idempotency-Key is kept a day by the database's clock, which also judges its expiry (the purge compares
with statement_timestamp()): the key was stamped by the API host's clock, so a host behind the database kept
it that much less than a day, and a host a day behind (a clock stepped back) wrote keys already expired: the
client's retry seconds later purged its key and recorded the reading twice."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.clinical.models import Observation
from apps.core import idempotency
from apps.core.models import IdempotencyKey
from tests.helpers import ShiftedTimezone

pytestmark = [
    pytest.mark.django_db,
    # The database's clock is PostgreSQL's statement_timestamp(); SQLite (embedded, one host) has no clock of its
    # own and the product stamps keys with the host's, so a host "behind the database" has no meaning there.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the database's own clock is PostgreSQL's"),
]


def _reading() -> dict:
    return {"code": "8867-4", "value": 80, "effective_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}


def _database_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("behind", [timedelta(hours=2), timedelta(hours=25)])
def test_a_key_is_kept_a_day_by_the_database_s_clock(clinician, patient, monkeypatch, behind):
    monkeypatch.setattr(idempotency, "timezone", ShiftedTimezone(-behind))
    url, body = f"/api/v1/patients/{patient.pk}/vitals/", _reading()
    first = clinician.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="reading-1")
    second = clinician.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="reading-1")
    assert (first.status_code, second.status_code) == (201, 201), second.content[:300]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert Observation.objects.filter(patient=patient).count() == 1
    key = IdempotencyKey.objects.get(key__isnull=False)
    # Stamped on the database's clock (within the test's run, not the host's hours behind), kept a day.
    assert _database_now() - timedelta(hours=1) < key.created_at <= _database_now(), key.created_at
    assert key.expires_at - key.created_at == idempotency.KEY_TTL
