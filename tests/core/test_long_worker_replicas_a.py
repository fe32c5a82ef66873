"""/readyz's long_worker check with more than one long worker, and a solo-pool one. (1) Every replica wrote the
one beacon of each long queue: with one replica busy with long work and another alive with a free slot that
took no heartbeat, the check flipped between "ok, busy" and "degraded" at each write (seen with two real
workers: 6 flips in 45 s). Each replica now keeps its own entry (hostname and pid), and the check combines the
fresh ones. (2) A `--pool solo` long worker runs its task in its event loop's thread, so its beacon (a timer of
that loop) stopped while it ran a benchmark: "gone" for a live, busy worker. A thread of its own beacons now."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from celery import shared_task
from django.core.cache import cache

from apps.core import selectors, services
from apps.core.selectors import DEGRADED, OK, WORKER_HEARTBEAT_CACHE_KEY
from tests.helpers import REPO_ROOT, database_url, log_in_report, stop_group, wait_for

pytestmark = pytest.mark.django_db

HOLD_TASK = "tests.a.hold_the_slot"


@shared_task(name=HOLD_TASK, ignore_result=True)
def hold_the_slot(started: str, release: str, seconds: float = 300) -> None:
    """Long work: notes that it started, then holds its slot until the file `release` exists."""
    Path(started).touch()
    deadline = time.monotonic() + seconds
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.2)


def _default_worker_beats_and_long_heartbeats_stale() -> None:
    now = datetime.now(UTC)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": now.isoformat(), "hostname": "celery@short"}, 3600)
    stamped = (now - timedelta(minutes=10)).isoformat()
    for queue in selectors.long_queues():
        cache.set(selectors.queue_heartbeat_cache_key(queue), {"at": stamped, "hostname": "long@old"}, 3600)


def _record(hostname: str, busy: int, slots: int = 1, busy_for: float = 3600) -> None:
    since = datetime.now(UTC) - timedelta(seconds=busy_for) if busy >= slots else None
    services.long_worker_beacon_record(
        hostname=hostname, queues=list(selectors.long_queues()), slots=slots, busy=busy, busy_since=since
    )


def test_a_busy_replica_and_an_idle_one_read_the_same_whichever_wrote_last():
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@idle-pod", busy=0)  # both replicas up
    readings = []
    for _ in range(3):  # the two replicas' beacons, every 10 s each, interleaved
        _record("long@busy-pod", busy=1)
        readings.append(selectors._probe_long_worker())
        _record("long@idle-pod", busy=0)
        readings.append(selectors._probe_long_worker())
    statuses = [status for status, _ in readings]
    # Was: ok, degraded, ok, degraded, ... (each write replaced the other's beacon).
    assert statuses == [DEGRADED] * 6, readings
    detail = readings[0][1]
    assert "long@idle-pod is alive with 0 of 1 slots busy but takes no heartbeat" in detail, detail
    assert "all 1 slots of long@busy-pod hold long work since" in detail, detail


def test_every_replica_busy_with_long_work_is_ok_busy_naming_each():
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@pod-1", busy=2, slots=2)
    _record("long@pod-2", busy=2, slots=2)
    status, detail = selectors._probe_long_worker()
    assert status == OK, detail
    assert "all 2 slots of long@pod-1 hold long work" in detail and "all 2 slots of long@pod-2" in detail, detail


def test_one_replica_stuck_among_busy_ones_reads_stuck():
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@pod-1", busy=1)
    _record("long@pod-2", busy=1, busy_for=selectors.long_worker_busy_bound_seconds() + 60)
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "all 1 slots of long@pod-2" in detail and "stuck?" in detail, detail


def test_a_replica_gone_ages_out_and_its_entry_is_dropped():
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@idle-pod", busy=0)
    key = selectors.long_worker_beacons_cache_key("benchmarks")
    entries = cache.get(key)
    (name,) = entries
    old = (datetime.now(UTC) - timedelta(seconds=selectors.LONG_WORKER_BEACON_FRESH_SECONDS + 5)).isoformat()
    cache.set(key, {name: {**entries[name], "at": old}}, 120)  # the idle replica stopped a minute ago
    cache.set(selectors.long_worker_beacons_cache_key("inference"), {name: {**entries[name], "at": old}}, 120)
    _record("long@busy-pod", busy=1)
    status, detail = selectors._probe_long_worker()
    assert status == OK and "idle-pod" not in detail, detail  # the stale entry is not read
    older = (datetime.now(UTC) - timedelta(seconds=services.LONG_WORKER_BEACON_KEPT_SECONDS + 60)).isoformat()
    cache.set(key, {**cache.get(key), name: {**entries[name], "at": older}}, 120)
    _record("long@busy-pod", busy=1)
    assert [entry["hostname"] for entry in cache.get(key).values()] == ["long@busy-pod"]  # dropped by a write


def test_a_replica_with_a_skewed_clock_drops_no_other_replicas_entry():
    """A writer whose clock ran 150 s ahead dropped every other replica's entry at each write (older than 120 s
    by its clock), and the check read "gone" between their writes (39 of 40 readings in a reviewer's run)."""
    _default_worker_beats_and_long_heartbeats_stale()
    _record("long@pod-a", busy=1)
    _record("long@pod-b", busy=1)
    ahead = datetime.now(UTC) + timedelta(seconds=150)

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return ahead

    with mock.patch.object(services, "datetime", Skewed):
        _record("long@skewed-node", busy=1)
    key = selectors.long_worker_beacons_cache_key("benchmarks")
    assert {"long@pod-a", "long@pod-b"} <= {entry["hostname"] for entry in cache.get(key).values()}
    status, detail = selectors._probe_long_worker()
    assert status == OK and "long@pod-a" in detail and "long@pod-b" in detail, detail


def test_a_beacon_of_an_older_release_is_still_read():
    """During a rolling upgrade, a long worker of the previous release writes the one shared beacon."""
    _default_worker_beats_and_long_heartbeats_stale()
    now = datetime.now(UTC)
    legacy = {"at": now.isoformat(), "hostname": "long@old-release", "slots": 1, "busy": 1,
              "busy_since": (now - timedelta(minutes=5)).isoformat()}  # fmt: skip
    for queue in selectors.long_queues():
        cache.set(selectors.long_worker_beacon_cache_key(queue), legacy, 120)
    _record("long@new-release", busy=1)
    status, detail = selectors._probe_long_worker()
    assert status == OK and "long@old-release" in detail and "long@new-release" in detail, detail


def test_the_relay_sends_a_new_copy_when_any_replica_has_a_free_slot():
    """On a broker that keeps expired messages, another copy goes once a replica shows a free slot: the busy
    replica's beacon, written last, hid the idle one's and none went."""
    old = (datetime.now(UTC) - timedelta(seconds=600)).isoformat()
    cache.set(selectors.relayed_heartbeat_pending_cache_key("benchmarks"), {"sent_at": old}, 3600)
    _record("long@idle-pod", busy=0)
    _record("long@busy-pod", busy=1)
    assert services.relayed_heartbeat_claim("benchmarks", expires_seconds=60, broker_drops_expired=False)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_solo_pool_long_worker_keeps_beaconing_while_its_task_runs(request):
    from controlplane.celery import app

    tag = uuid.uuid4().hex[:8]
    name = f"solo-{tag}@localhost"
    folder = Path(tempfile.mkdtemp(prefix="a-solo-beacon-"))
    started, release, log = folder / "started", folder / "release", folder / "solo.log"
    log_in_report(request, log, "solo worker")
    key = f"{WORKER_HEARTBEAT_CACHE_KEY}:benchmarks:beacons"  # {worker: beacon}
    legacy = f"{WORKER_HEARTBEAT_CACHE_KEY}:benchmarks:beacon"  # the one beacon every worker wrote
    cache.delete_many([key, legacy])
    with app.connection_for_write() as connection:
        for queue in selectors.long_queues():
            with contextlib.suppress(Exception):  # a queue not declared yet holds nothing
                connection.default_channel.queue_purge(queue)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", "benchmarks,inference",
         "--pool", "solo", "-n", name, "-I", "tests.core.test_long_worker_replicas_a", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, stdout=log.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "ready." in log.read_text(errors="replace"), 120, "the solo worker ready", log)
        app.send_task(HOLD_TASK, kwargs={"started": str(started), "release": str(release)}, queue="benchmarks")
        wait_for(started.exists, 120, "the long task started", log)
        began = datetime.now(UTC)

        def beacon_while_busy() -> bool:
            entries = [*(cache.get(key) or {}).values(), cache.get(legacy) or {}]
            entries = [e for e in entries if e.get("hostname") == name]
            return any(datetime.fromisoformat(e["at"]) > began and e["busy"] == e["slots"] == 1 for e in entries)

        # Was: none while the task ran (the loop's timer waits for the task), and "gone" after 60 s.
        wait_for(beacon_while_busy, 120, "a beacon from the solo worker while its task runs", log)
        _default_worker_beats_and_long_heartbeats_stale()
        status, detail = selectors._probe_long_worker()
        assert status == OK and f"all 1 slots of {name} hold long work since" in detail, detail
    finally:
        release.touch()
        stop_group(worker, sig=signal.SIGTERM, timeout=60)
