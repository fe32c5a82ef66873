"""core.heartbeat on `default` relays a copy to each long queue for /readyz's long_worker check. (1) With the
embedded filesystem broker (make run's default) the copies piled up while the long worker was stopped or busy:
that transport ignores the per-message expiry, two files a beat (~17,000 a day). Now at most one copy per long
queue is outstanding on every broker. (2) With only the default worker paused, nothing was relayed and
long_worker blamed the healthy long worker ("gone or every slot holds long work"): with the default worker's own
heartbeat stale and the long worker's beacon fresh it now reads ok, naming the stopped relay. (3) The
configmap's NetworkPolicy note named the worker as the api's peer: it is the longworker."""

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache

from apps.core import selectors, services
from apps.core.selectors import DEGRADED, OK, WORKER_HEARTBEAT_CACHE_KEY
from tests.helpers import REPO_ROOT, embedded_env, manage

pytestmark = pytest.mark.django_db

# Run by `manage.py shell` in the embedded mode: beat's heartbeat taken by the default worker (apply: run here),
# no long worker. Prints the long queues of the messages in the broker's folder after each step.
EMBEDDED_RELAYS = """
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from django.conf import settings
from django.core.cache import cache
from apps.core import selectors
from apps.core.tasks import heartbeat

folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
assert settings.CELERY_BROKER_URL.startswith("filesystem://"), settings.CELERY_BROKER_URL
def queued():
    return sorted(path.name.rsplit(".", 2)[-2] for path in folder.glob("*.msg"))
def age_the_pending_copies():
    old = (datetime.now(UTC) - timedelta(seconds=600)).isoformat()
    for queue in selectors.long_queues():
        cache.set(selectors.relayed_heartbeat_pending_cache_key(queue), {"sent_at": old}, 3600)
def beacon(busy, slots=2):
    now = datetime.now(UTC)
    value = {"at": now.isoformat(), "hostname": "long@here", "queues": list(selectors.long_queues()),
             "slots": slots, "busy": busy, "busy_since": now.isoformat() if busy >= slots else None}
    for queue in selectors.long_queues():
        cache.set(selectors.long_worker_beacon_cache_key(queue), value, 120)
steps = {}
for _ in range(8):
    heartbeat.apply()
steps["eight beats, no long worker"] = queued()
print("FIRST " + json.dumps(steps["eight beats, no long worker"]), flush=True)
age_the_pending_copies()
for _ in range(3):
    heartbeat.apply()
steps["copies past their expiry, no beacon"] = queued()
beacon(busy=2)
for _ in range(3):
    heartbeat.apply()
steps["every slot busy"] = queued()
beacon(busy=0)
heartbeat.apply()
heartbeat.apply()
steps["alive with a free slot: the old copy was dropped or lost"] = queued()
heartbeat.apply(kwargs={"queue": "benchmarks"})
heartbeat.apply()
steps["benchmarks' copy taken"] = queued()
print("STEPS " + json.dumps(steps))
"""


def test_the_filesystem_broker_holds_at_most_one_relayed_copy_per_long_queue():
    var_dir = Path(tempfile.mkdtemp(prefix="f2-relay-"))
    result = manage("shell", "-c", EMBEDDED_RELAYS, env=embedded_env(var_dir), timeout=300)
    first = [line for line in result.stdout.splitlines() if line.startswith("FIRST ")]
    assert first, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads(first[0].removeprefix("FIRST ")) == sorted(selectors.long_queues())  # was 16 files
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("STEPS "))
    steps = json.loads(line.removeprefix("STEPS "))
    one_each = sorted(selectors.long_queues())
    assert steps["eight beats, no long worker"] == one_each, steps  # was 16 files
    assert steps["copies past their expiry, no beacon"] == one_each, steps  # still queued: not lost
    assert steps["every slot busy"] == one_each, steps
    assert steps["alive with a free slot: the old copy was dropped or lost"] == sorted(one_each * 2), steps
    assert steps["benchmarks' copy taken"] == sorted([*one_each * 2, "benchmarks"]), steps


def _pending(queue: str) -> dict | None:
    return cache.get(selectors.relayed_heartbeat_pending_cache_key(queue))


def test_no_second_copy_while_the_first_is_untaken_and_young_on_any_broker():
    for drops in (True, False):
        cache.clear()
        assert services.relayed_heartbeat_claim("benchmarks", expires_seconds=60, broker_drops_expired=drops)
        assert not services.relayed_heartbeat_claim("benchmarks", expires_seconds=60, broker_drops_expired=drops)
        services.relayed_heartbeat_taken("benchmarks")
        assert _pending("benchmarks") is None
        assert services.relayed_heartbeat_claim("benchmarks", expires_seconds=60, broker_drops_expired=drops)


def test_rabbitmq_gets_a_new_copy_once_the_old_one_expired():
    """RabbitMQ drops the expired copy (per-message TTL): without a new one a returning worker got none."""
    old = (datetime.now(UTC) - timedelta(seconds=61)).isoformat()
    cache.set(selectors.relayed_heartbeat_pending_cache_key("inference"), {"sent_at": old}, 3600)
    assert services.relayed_heartbeat_claim("inference", expires_seconds=60, broker_drops_expired=True)
    assert not services.relayed_heartbeat_claim("inference", expires_seconds=60, broker_drops_expired=True)


def test_the_relay_sends_one_copy_per_long_queue_through_the_task(monkeypatch):
    from apps.core import tasks

    sent = []
    monkeypatch.setattr(tasks.heartbeat, "apply_async", lambda **kwargs: sent.append(kwargs["queue"]))
    for _ in range(5):
        tasks.heartbeat.apply()
    assert sorted(sent) == sorted(selectors.long_queues())
    tasks.heartbeat.apply(kwargs={"queue": "inference"})  # the long worker took inference's copy
    tasks.heartbeat.apply()
    assert sorted(sent) == sorted([*selectors.long_queues(), "inference"])


def test_a_failed_relay_is_not_left_pending(monkeypatch):
    from apps.core import tasks

    def refuse(**kwargs):
        raise OSError("broker down")

    monkeypatch.setattr(tasks.heartbeat, "apply_async", refuse)
    tasks.heartbeat.apply()
    assert all(_pending(queue) is None for queue in selectors.long_queues())


def _stamp(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def _beats(default_ago: float, long_ago: float) -> None:
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": _stamp(default_ago), "hostname": "celery@short"}, 3600)
    for queue in selectors.long_queues():
        key = selectors.queue_heartbeat_cache_key(queue)
        cache.set(key, {"at": _stamp(long_ago), "hostname": "long@pod-1"}, 3600)


def _beacons(busy: int, slots: int = 2, age: float = 5) -> None:
    beacon = {"at": _stamp(age), "hostname": "long@pod-1", "queues": list(selectors.long_queues()),
              "slots": slots, "busy": busy, "busy_since": _stamp(60) if busy >= slots else None}  # fmt: skip
    for queue in selectors.long_queues():
        cache.set(selectors.long_worker_beacon_cache_key(queue), beacon, 120)


@pytest.mark.parametrize("busy", [0, 1, 2])
def test_only_the_default_worker_paused_does_not_blame_the_long_worker(busy):
    """Both heartbeats stopped at the same moment (the relay stopped with the default worker); the long
    worker's beacon is fresh: it is alive, and long_worker reads ok, naming the stopped relay."""
    _beats(default_ago=300, long_ago=300)
    _beacons(busy=busy)
    status, detail = selectors._probe_long_worker()
    assert status == OK, detail
    assert "not relayed" in detail and "default worker" in detail, detail
    assert "gone" not in detail and "takes no heartbeat" not in detail, detail


def test_the_default_worker_never_seen_is_no_blame_either():
    for queue in selectors.long_queues():
        cache.set(selectors.queue_heartbeat_cache_key(queue), {"at": _stamp(300), "hostname": "long@pod-1"}, 3600)
    _beacons(busy=0)
    status, detail = selectors._probe_long_worker()
    assert status == OK and "not relayed" in detail and "missing" in detail, detail


def test_with_the_beacon_stale_too_the_long_worker_is_gone():
    _beats(default_ago=300, long_ago=300)
    _beacons(busy=0, age=300)
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "gone" in detail, detail


def test_a_relaying_default_worker_still_shows_a_long_worker_that_takes_nothing():
    _beats(default_ago=2, long_ago=300)
    _beacons(busy=0)
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "takes no heartbeat" in detail, detail


def test_stuck_work_is_reported_even_with_the_relay_stopped():
    _beats(default_ago=300, long_ago=300)
    beacon = {"at": _stamp(5), "hostname": "long@pod-1", "queues": list(selectors.long_queues()), "slots": 1,
              "busy": 1, "busy_since": _stamp(selectors.long_worker_busy_bound_seconds() + 600)}  # fmt: skip
    for queue in selectors.long_queues():
        cache.set(selectors.long_worker_beacon_cache_key(queue), beacon, 120)
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED and "stuck?" in detail, detail


def test_the_configmap_names_the_longworker_as_the_apis_peer():
    text = (REPO_ROOT / "deploy/k8s/base/configmap.yaml").read_text()
    assert "the worker and Prometheus reach the api" not in text
    assert "the longworker" in text and "Prometheus reach the api" in text
