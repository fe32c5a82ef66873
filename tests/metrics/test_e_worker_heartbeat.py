"""The Overview's live feed says whether a Celery worker is alive (`worker`, from apps.core.selectors.probe_worker):
a paused or stopped worker records no heartbeat, and it showed nothing at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, probe_worker
from apps.core.services import worker_heartbeat_record
from apps.metrics.selectors import live_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_heartbeat():
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def test_no_heartbeat_ever_reads_as_never_not_as_nothing():
    worker = live_snapshot()["worker"]
    assert worker["state"] == "never" and worker["alive"] is False
    assert worker["last_heartbeat_age_seconds"] is None


def test_a_fresh_heartbeat_reads_alive_with_its_age():
    beat = worker_heartbeat_record(hostname="worker-a")
    at = datetime.fromisoformat(beat["at"])
    worker = probe_worker(now=at + timedelta(seconds=4))
    assert worker == {"alive": True, "state": "ok", "last_heartbeat_at": at.isoformat(),
                      "last_heartbeat_age_seconds": 4.0, "hostname": "worker-a",
                      "max_age_seconds": worker["max_age_seconds"]}  # fmt: skip
    assert live_snapshot()["worker"]["hostname"] == "worker-a"


def test_a_paused_worker_reads_down_once_its_heartbeat_is_older_than_the_limit(settings):
    at = datetime.now(UTC) - timedelta(minutes=5)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": at.isoformat(), "hostname": "worker-a"}, timeout=3600)
    worker = probe_worker(now=at + timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS + 1))
    assert worker["state"] == "down" and worker["alive"] is False
    assert worker["last_heartbeat_age_seconds"] == settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS + 1
    late = probe_worker(now=at + timedelta(seconds=3 * settings.WORKER_HEARTBEAT_INTERVAL_SECONDS + 1))
    assert late["state"] == "late" and late["alive"] is True
    assert live_snapshot()["worker"]["state"] == "down"  # five minutes: past the default 60 s
    assert core_selectors._probe_worker()[0] == core_selectors.ERROR  # /readyz says the same


def test_a_cache_that_cannot_be_read_says_unknown(monkeypatch):
    def away():
        raise ConnectionError("cache down")

    monkeypatch.setattr(core_selectors, "worker_heartbeat", away)
    worker = probe_worker()
    assert worker["state"] == "unknown" and worker["alive"] is None
