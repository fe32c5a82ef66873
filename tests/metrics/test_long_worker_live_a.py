"""The Overview's live feed showed the default worker alone ("Worker: alive") while the long worker (benchmark
runs, optimizer steps, forecasts) was gone or had a replica idle that took no heartbeat: the feed now carries
the long worker's state too (apps.core.selectors.probe_long_worker: /readyz's long_worker check and the replicas
whose beacons are fresh)."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.cache import cache

from apps.core import selectors, services
from apps.core.selectors import DEGRADED, WORKER_HEARTBEAT_CACHE_KEY
from apps.metrics.selectors import live_snapshot

pytestmark = pytest.mark.django_db


def _default_worker_beats_and_long_heartbeats_stale() -> None:
    now = datetime.now(UTC)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": now.isoformat(), "hostname": "celery@short"}, 3600)
    stamped = (now - timedelta(minutes=10)).isoformat()
    for queue in selectors.long_queues():
        cache.set(selectors.queue_heartbeat_cache_key(queue), {"at": stamped, "hostname": "long@old"}, 3600)


def _record(hostname: str, busy: int, slots: int) -> None:
    since = datetime.now(UTC) - timedelta(hours=1) if busy >= slots else None
    services.long_worker_beacon_record(
        hostname=hostname, queues=list(selectors.long_queues()), slots=slots, busy=busy, busy_since=since
    )


def test_the_live_feed_carries_the_long_worker_beside_the_default_worker():
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@pod-1", busy=2, slots=2)
    _record("long@pod-2", busy=0, slots=2)
    long_worker = live_snapshot()["long_worker"]  # was: no such key, the Overview showed the default worker alone
    assert long_worker["status"] == DEGRADED and "long@pod-2 is alive" in long_worker["detail"], long_worker
    assert long_worker["workers"] == [
        {"hostname": "long@pod-1", "slots": 2, "busy": 2},
        {"hostname": "long@pod-2", "slots": 2, "busy": 0},
    ]
    cache.delete_many([selectors.long_worker_beacons_cache_key(queue) for queue in selectors.long_queues()])
    assert live_snapshot()["long_worker"]["workers"] == []
    assert live_snapshot()["long_worker"]["status"] == DEGRADED  # gone


def test_the_live_feed_says_unknown_when_the_cache_cannot_be_read(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "get_many", refuse)
    assert selectors.probe_long_worker()["status"] == "unknown"


def test_the_long_worker_is_read_once_per_frame():
    """The status and the workers listed came from two reads of the beacons: one more round trip a frame, and
    the two could disagree (a "gone" listing a worker)."""
    with mock.patch.object(cache, "get_many", wraps=cache.get_many) as get_many:
        selectors.probe_long_worker()
    assert get_many.call_count == 1
