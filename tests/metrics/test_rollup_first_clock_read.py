"""A flush whose read of the database's clock fails, before any read succeeded in this process, has no offset to
move its requests onto the database's clock: folded with 0 (this host's clock taken for the database's), they
were kept in the host's minutes and written there once the database answered, an hour off on a host an hour
off. Such a batch is kept as recorded and folded by the first flush that reads the clock.

Only the recorder's clock is moved (its module's `time`); the database's is the real one."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from apps.core.breaker import metrics_database_breaker
from apps.metrics import recorder as recorder_module
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import Recorder
from apps.resources import selectors as resources_selectors
from apps.resources.selectors import database_now
from tests.metrics.support import ShiftedClock, minutes_between

pytestmark = pytest.mark.django_db


@pytest.fixture
def breaker_closed_after():
    yield
    metrics_database_breaker.reset()


def test_a_batch_whose_first_clock_read_failed_is_written_in_the_databases_minute(monkeypatch, breaker_closed_after):
    monkeypatch.setattr(recorder_module, "time", ShiftedClock(-3635))  # this host an hour behind the database
    monkeypatch.setattr(metrics_database_breaker, "_start_probe", lambda: None)
    process = Recorder(flush_interval=3600, background=False)
    before = database_now()
    process.record(route="api/v1/first-read-fails/", method="GET", status=200, client="app", elapsed_us=2_000)

    def refused():
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(resources_selectors, "database_now", refused)
        assert process.flush() == 0
    assert process.pending_requests() == 1  # kept, not dropped
    assert process._clock_offset_ms is None

    metrics_database_breaker.reset()  # the database is back
    assert process.flush() == 1
    after = database_now()
    row = RequestRollup.objects.get(route="api/v1/first-read-fails/")
    assert row.count == 1
    assert row.minute in minutes_between(before, after)
    assert process.pending_requests() == 0


def test_with_the_breaker_open_from_the_start_the_requests_wait_for_the_first_clock_read(
    monkeypatch, breaker_closed_after
):
    """The database failed elsewhere in this process first (its breaker open): the flush does not even read the
    clock, and had no offset either."""
    monkeypatch.setattr(recorder_module, "time", ShiftedClock(7200))  # two hours ahead
    monkeypatch.setattr(metrics_database_breaker, "_start_probe", lambda: None)
    metrics_database_breaker.failure()
    process = Recorder(flush_interval=3600, background=False)
    before = database_now()
    for _ in range(3):
        process.record(route="api/v1/breaker-open-first/", method="GET", status=200, client="app", elapsed_us=900)
        assert process.flush() == 0
    assert process.pending_requests() == 3

    metrics_database_breaker.reset()
    process.record(route="api/v1/breaker-open-first/", method="GET", status=200, client="app", elapsed_us=900)
    assert process.flush() == 1
    row = RequestRollup.objects.get(route="api/v1/breaker-open-first/")
    assert row.count == 4
    assert row.minute in minutes_between(before, database_now())


def test_a_batch_kept_unfolded_is_bounded(monkeypatch, breaker_closed_after):
    """Kept for a long outage, the requests would grow memory for ever: past MAX_PENDING the oldest go."""
    monkeypatch.setattr(metrics_database_breaker, "_start_probe", lambda: None)
    monkeypatch.setattr(Recorder, "MAX_PENDING", 30)  # ten requests
    metrics_database_breaker.failure()
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(25):
        process.record(route="api/v1/bounded/", method="GET", status=200, client="app", elapsed_us=900)
        process.flush()
    assert 0 < process.pending_requests() <= 10
    metrics_database_breaker.reset()
    process.flush()
    assert RequestRollup.objects.get(route="api/v1/bounded/").count <= 10
