"""probe_worker promised "unknown" for a heartbeat it cannot read, but one unreadable value in the cache (no
time, no timezone, None) raised: the dashboard page builds its first frame from live_snapshot on every load
(a 500), and every live frame failed with it. A heartbeat stamped in the future read "ok", age 0, for as long
as it stayed ahead: now "unknown" past a small clock skew."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, probe_worker
from apps.metrics.selectors import live_snapshot

pytestmark = pytest.mark.django_db

UNREADABLE = [
    {"at": "garbage", "hostname": "worker-a"},
    {"at": "2026-01-01T10:00:00", "hostname": "worker-a"},  # no timezone: naive against aware
    {"at": None, "hostname": "worker-a"},
    {"at": 12345},
    "garbage",
    ["at"],
]


@pytest.fixture(autouse=True)
def _no_heartbeat():
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _store(beat) -> None:
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, beat, timeout=3600)  # where worker_heartbeat_record stores it


@pytest.mark.parametrize("beat", UNREADABLE)
def test_an_unreadable_heartbeat_reads_unknown(beat):
    _store(beat)
    worker = probe_worker()
    assert worker["state"] == "unknown" and worker["alive"] is None  # the old probe: raised
    assert worker["last_heartbeat_age_seconds"] is None
    assert live_snapshot()["worker"]["state"] == "unknown"
    assert core_selectors._probe_worker()[0] == core_selectors.DEGRADED  # /readyz says why, not a traceback


def test_a_heartbeat_from_the_future_reads_unknown_not_ok():
    now = datetime.now(UTC)
    _store({"at": (now + timedelta(hours=1)).isoformat(), "hostname": "worker-a"})
    worker = probe_worker(now=now)
    assert worker["state"] == "unknown" and worker["alive"] is None  # the old probe: "ok", age 0
    assert worker["last_heartbeat_age_seconds"] is None


def test_a_heartbeat_a_little_ahead_of_this_clock_is_still_ok():
    now = datetime.now(UTC)
    _store({"at": (now + timedelta(seconds=5)).isoformat(), "hostname": "worker-a"})
    worker = probe_worker(now=now)
    assert worker["state"] == "ok" and worker["alive"] is True and worker["last_heartbeat_age_seconds"] == 0.0


@pytest.mark.parametrize("beat", UNREADABLE[:3])
def test_the_dashboard_page_loads_with_an_unreadable_heartbeat(client, admin_user, tmp_path, beat):
    _store(beat)
    (tmp_path / "index.html").write_text("<html><head></head><body></body></html>")
    client.force_login(admin_user)
    client.raise_request_exception = False
    with override_settings(DASHBOARD_BUILD_DIR=tmp_path):
        response = client.get("/dashboard/")
    assert response.status_code == 200  # the old page: 500
    html = response.content.decode()
    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["snapshot"]["worker"]["state"] == "unknown"
