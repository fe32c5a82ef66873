"""/readyz's `long_worker` check tells a busy long worker from a gone one. A long worker whose every slot holds
long work (a day-long benchmark run, optimizer steps) takes no relayed heartbeat until a slot frees, and the
check read `degraded` for as long as the work ran: a false alarm. The worker now publishes a beacon per long
queue it consumes from its event loop's timer (controlplane/celery.py's LongWorkerBeacon): alive, N of M slots
busy. Heartbeat stale but beacon fresh with every slot busy reads ok ("busy"); neither fresh reads degraded."""

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
from types import SimpleNamespace

import pytest
from celery import shared_task
from django.core.cache import cache

from apps.core import selectors
from apps.core.selectors import DEGRADED, OK, WORKER_HEARTBEAT_CACHE_KEY, readiness_report
from tests.helpers import REPO_ROOT, database_url, log_in_report, stop_group, wait_for

pytestmark = pytest.mark.django_db

SLEEP_TASK = "tests.e.hold_a_slot"


@shared_task(name=SLEEP_TASK, ignore_result=True)
def hold_a_slot(release: str, seconds: float = 300) -> None:
    """Long work: holds its slot until the file `release` exists (at most `seconds`)."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.2)


def _beacon_key(queue: str) -> str:
    return f"{WORKER_HEARTBEAT_CACHE_KEY}:{queue}:beacon"


def _published(queue: str, hostname: str) -> dict | None:
    """The beacon the worker `hostname` published for `queue` (one entry per worker: hostname and pid)."""
    entries = cache.get(selectors.long_worker_beacons_cache_key(queue)) or {}
    return next((beacon for beacon in entries.values() if beacon.get("hostname") == hostname), None)


def _default_worker_beats_and_long_heartbeats_stale(minutes: float = 10) -> None:
    now = datetime.now(UTC)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": now.isoformat(), "hostname": "celery@short"}, 3600)
    stamped = (now - timedelta(minutes=minutes)).isoformat()
    for queue in selectors.long_queues():
        cache.set(selectors.queue_heartbeat_cache_key(queue), {"at": stamped, "hostname": "long@pod-1"}, 3600)


def _beacon(busy: int, slots: int = 2, age: float = 5, busy_for: float = 3 * 3600) -> dict:
    now = datetime.now(UTC)
    return {
        "at": (now - timedelta(seconds=age)).isoformat(),
        "hostname": "long@pod-1",
        "queues": list(selectors.long_queues()),
        "slots": slots,
        "busy": busy,
        "busy_since": (now - timedelta(seconds=busy_for)).isoformat() if busy >= slots else None,
    }


def _set_beacons(beacon: dict) -> None:
    for queue in selectors.long_queues():
        cache.set(_beacon_key(queue), beacon, 3600)


def test_stale_heartbeat_with_a_fresh_beacon_of_all_slots_busy_is_ok_busy():
    _default_worker_beats_and_long_heartbeats_stale()
    _set_beacons(_beacon(busy=2))
    overall, checks = readiness_report()
    assert checks["long_worker"]["status"] == OK, checks  # was: degraded for as long as the work ran
    assert (
        "busy: " in checks["long_worker"]["detail"] and "all 2 slots of long@pod-1" in checks["long_worker"]["detail"]
    )
    assert overall == OK, checks


def test_stale_heartbeat_and_stale_beacon_is_degraded_gone():
    _default_worker_beats_and_long_heartbeats_stale()
    _set_beacons(_beacon(busy=2, age=selectors.LONG_WORKER_BEACON_FRESH_SECONDS + 30))
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "gone" in detail and "(down)" in detail, detail


def test_a_fresh_beacon_with_a_free_slot_does_not_excuse_a_missing_heartbeat():
    _default_worker_beats_and_long_heartbeats_stale()
    _set_beacons(_beacon(busy=1))
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "1 of 2 slots busy" in detail, detail


def test_every_slot_busy_past_the_bound_reads_stuck():
    _default_worker_beats_and_long_heartbeats_stale()
    _set_beacons(_beacon(busy=2, busy_for=selectors.long_worker_busy_bound_seconds() + 60))
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "stuck" in detail, detail
    assert selectors.long_worker_busy_bound_seconds() >= 24 * 3600  # a day-long benchmark run is not stuck


def test_an_unreadable_beacon_is_no_beacon():
    _default_worker_beats_and_long_heartbeats_stale()
    _set_beacons({"at": "yesterday", "slots": "two", "busy": 2})
    status, detail = selectors._probe_long_worker()  # does not raise
    assert status == DEGRADED and "whose worker is gone (no heartbeat taken, no beacon in" in detail, detail


class _FakeTimer:
    def __init__(self) -> None:
        self.calls = []

    def call_repeatedly(self, delay, callback, *args):
        self.calls.append((delay, callback, args))
        return SimpleNamespace(cancel=lambda: None)


class _Request:
    def __init__(self, time_start: float) -> None:
        self.time_start = time_start


def _fake_worker(*, eventloop: bool, queues: tuple[str, ...], slots: int):
    timer = _FakeTimer()
    consume = dict.fromkeys(queues)
    return SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume))),
        use_eventloop=eventloop,
        hub=timer if eventloop else None,
        timer=timer if not eventloop else _FakeTimer(),
        pool=SimpleNamespace(num_processes=slots),
        hostname="long@fake",
    ), timer


@pytest.mark.parametrize("eventloop", [True, False], ids=["event-loop", "embedded-no-event-loop"])
def test_the_worker_step_publishes_the_beacon_from_its_timer(eventloop):
    from celery.worker import state

    from controlplane.celery import LongWorkerBeacon

    for queue in selectors.long_queues():
        cache.delete_many([_beacon_key(queue), selectors.long_worker_beacons_cache_key(queue)])
    worker, timer = _fake_worker(eventloop=eventloop, queues=("benchmarks", "inference"), slots=1)
    step = LongWorkerBeacon.__new__(LongWorkerBeacon)
    step.timer_entry, step.executor, step.in_flight = None, None, None
    step.start(worker)
    try:
        assert len(timer.calls) == 1 and timer.calls[0][0] == 10.0
        started = time.time() - 120
        request = _Request(started)
        state.active_requests.add(request)
        try:
            timer.calls[0][1]()  # a tick of the loop
            step.in_flight.result(timeout=30)
        finally:
            state.active_requests.discard(request)
    finally:
        step.stop(worker)
    beacon = _published("benchmarks", "long@fake")
    assert beacon["busy"] == beacon["slots"] == 1 and beacon["hostname"] == "long@fake", beacon
    assert abs(datetime.fromisoformat(beacon["busy_since"]).timestamp() - started) < 1, beacon
    assert _published("inference", "long@fake") == beacon


def test_a_worker_of_no_long_queue_publishes_no_beacon():
    from controlplane.celery import LongWorkerBeacon

    worker, timer = _fake_worker(eventloop=True, queues=("default",), slots=2)
    step = LongWorkerBeacon.__new__(LongWorkerBeacon)
    step.timer_entry, step.executor, step.in_flight = None, None, None
    step.start(worker)
    assert timer.calls == [] and step.executor is None


def test_redis_down_while_publishing_is_logged_not_raised(monkeypatch, caplog):
    from controlplane import celery as celery_module

    def refuse(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "set_many", refuse)
    celery_module._publish_beacon("long@fake", ["benchmarks"], 2, 2, datetime.now(UTC))  # does not raise
    assert "Could not publish the long worker's beacon" in caplog.text


def _start_long_worker(name: str, log: Path) -> subprocess.Popen:
    """As the Procfile's longworker (prefork), with one slot, importing this module for its long task."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", "benchmarks,inference",
         "--concurrency", "1", "-n", name, "-I", "tests.core.test_long_worker_busy_e", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, stdout=log.open("w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _purge_long_queues() -> None:
    from controlplane.celery import app

    with app.connection_for_write() as connection:
        for queue in selectors.long_queues():
            with contextlib.suppress(Exception):  # a queue not declared yet holds nothing
                connection.default_channel.queue_purge(queue)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_long_worker_with_every_slot_busy_reads_ok_busy_then_gone_once_stopped(monkeypatch, request):
    from apps.core.tasks import heartbeat
    from controlplane.celery import app

    tag = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="e-long-busy-"))
    release = folder / "release"
    for queue in selectors.long_queues():
        cache.delete_many([_beacon_key(queue), selectors.long_worker_beacons_cache_key(queue)])
    _default_worker_beats_and_long_heartbeats_stale()
    _purge_long_queues()  # what an earlier run left there (a heartbeat, a held task) would run first
    long = _start_long_worker(f"long-{tag}@localhost", log_in_report(request, folder / "long.log", "long worker"))
    try:
        app.send_task(SLEEP_TASK, kwargs={"release": str(release)}, queue="benchmarks")

        def all_busy() -> bool:
            beacon = _published("benchmarks", f"long-{tag}@localhost") or {}
            return beacon.get("busy", 0) >= beacon.get("slots", 1)

        wait_for(all_busy, 120, "the long worker's beacon of its only slot busy", folder / "long.log")
        # Its slot is held: it takes no heartbeat from now on (one taken before the long task is forgotten).
        _default_worker_beats_and_long_heartbeats_stale()
        for queue in selectors.long_queues():  # what core.heartbeat relays: it waits behind the long work
            heartbeat.apply_async(kwargs={"queue": queue}, queue=queue, expires=60, expiration=60)
        status, detail = selectors._probe_long_worker()
        assert status == OK, detail  # was: degraded for as long as the work ran
        assert "busy: " in detail and f"all 1 slots of long-{tag}@localhost hold long work since" in detail, detail
        assert readiness_report()[1]["long_worker"]["status"] == OK

        stop_group(long, sig=signal.SIGKILL, timeout=60)  # gone as a crashed pod: its beacon stops
        # Judged by a shorter freshness than the 60 s a beacon stays fresh, not to wait a minute here.
        monkeypatch.setattr(selectors, "LONG_WORKER_BEACON_FRESH_SECONDS", 15)
        wait_for(lambda: selectors._probe_long_worker()[0] == DEGRADED, 120, "long_worker degraded")
        status, detail = selectors._probe_long_worker()
        assert status == DEGRADED and "gone" in detail, detail
    finally:
        release.touch()
        stop_group(long, sig=signal.SIGKILL, timeout=60)
        _purge_long_queues()
