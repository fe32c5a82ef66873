"""The pools requests wait on are those of the web processes, on other hosts than the worker that runs the
monitor: each publishes its pool's use to Redis, and the monitor judges each host by its busiest pool.

Real PostgreSQL pool (psycopg_pool, DB_POOL_MAX_SIZE of the test settings) and real Redis; only the host
name of the publishing process is changed, to stand for an api pod.
"""

import json
import threading
import time
from types import SimpleNamespace

import pytest
from django.db import connections
from django.test import override_settings

from apps.resources import pools, tasks
from apps.resources.models import ResourceRecommendation
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db
QUIET = {"cpu": 101.0, "memory": 101.0, "disk": 101.0, "pool": 90.0, "redis_memory": 101.0}


@pytest.fixture(autouse=True)
def _fresh_hash():
    pools._redis().delete(pools.KEY)
    yield
    pools._redis().delete(pools.KEY)


def _publish_from_a_full_pool(monkeypatch, host: str) -> dict:
    """Publish as `host` while every connection of this process's pool is taken and a request waits."""
    monkeypatch.setattr(pools.socket, "gethostname", lambda: host)
    pool = connections["default"].pool
    if pool.closed:  # made anew after an earlier test closed the last one (a parallel load does); Django opens
        pool.open(wait=True)  # it on its first connection, which this test's, older, did not need
    stats = pool.get_stats()
    held = [pool.getconn(timeout=30) for _ in range(pool.max_size - (stats["pool_size"] - stats["pool_available"]))]
    waiter = threading.Thread(target=lambda: pool.putconn(pool.getconn(timeout=60)))
    waiter.start()
    try:
        for _ in range(600):  # until the waiter is queued (a bound, not a timing assertion)
            if pool.get_stats().get("requests_waiting"):
                break
            time.sleep(0.05)
        return pools.pool_usage_publish()
    finally:
        for conn in held:
            pool.putconn(conn)
        waiter.join()
        monkeypatch.undo()


def test_a_full_pool_on_an_api_pod_opens_a_recommendation_for_that_pod(monkeypatch):
    entry = _publish_from_a_full_pool(monkeypatch, "api-7d9f-x2")
    assert (entry["pct"], entry["waiting"]) == (100.0, 1)
    assert isinstance(entry["l1_cache_bytes"], int)  # this process's in-memory cache tier
    with use_thresholds(QUIET):
        tasks.monitor()  # on the worker's host, whose own pool is idle
    [pool_rec] = ResourceRecommendation.objects.filter(kind="pool", status="open")
    assert pool_rec.host == "api-7d9f-x2" and pool_rec.value == 100.0
    assert "1 requests waiting" in pool_rec.message and "DB_POOL_MAX_SIZE" in pool_rec.message


def test_stale_entries_are_ignored_then_forgotten():
    now = time.time()
    redis = pools._redis()
    for name, age in (("api-fresh:1", 5), ("api-stale:1", pools.FRESH_SECONDS + 5), ("api-old:1", 3600)):
        host = name.split(":")[0]
        redis.hset(pools.KEY, name, json.dumps({"host": host, "pid": 1, "at": now - age, "pct": 95.0, "in_use": 19,
                                                "max_size": 20, "waiting": 0}))  # fmt: skip
    redis.hset(pools.KEY, "api-fresh:2", json.dumps({"host": "api-fresh", "pid": 2, "at": now, "pct": 40.0,
                                                     "in_use": 8, "max_size": 20, "waiting": 0}))  # fmt: skip
    usage = pools.pool_usage_by_host(now=now)
    assert list(usage) == ["api-fresh"] and usage["api-fresh"]["pct"] == 95.0  # the host's busiest process
    assert sorted(redis.hkeys(pools.KEY)) == [b"api-fresh:1", b"api-fresh:2", b"api-stale:1"]


def test_an_unreadable_entry_is_dropped_and_silences_no_pool():
    """One entry that was not JSON (or lacked its time) made every read fail: every pool unknown, for ever."""
    now = time.time()
    redis = pools._redis()
    redis.hset(pools.KEY, "api-ok:1", json.dumps({"host": "api-ok", "pid": 1, "at": now, "pct": 95.0, "in_use": 19,
                                                  "max_size": 20, "waiting": 0}))  # fmt: skip
    redis.hset(pools.KEY, "api-cut:1", '{"host": "api-cut", "pid": 1, "at"')
    redis.hset(pools.KEY, "api-old:1", json.dumps({"host": "api-old", "pid": 1, "pct": 50.0}))
    usage = pools.pool_usage_by_host(now=now)
    assert list(usage) == ["api-ok"] and usage["api-ok"]["pct"] == 95.0
    assert redis.hkeys(pools.KEY) == [b"api-ok:1"]


def test_with_redis_down_the_monitor_samples_and_concludes_nothing_about_pools(monkeypatch):
    _publish_from_a_full_pool(monkeypatch, "api-7d9f-x2")
    with use_thresholds(QUIET):
        tasks.monitor()
    unreachable = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                               "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}}  # fmt: skip
    with use_thresholds(QUIET), override_settings(CACHES=unreachable):
        assert pools.pool_usage_by_host() is None and pools.pool_usage_publish() is None
        tasks.monitor()
        tasks.monitor()
    # unknown, not calm: the api pod's recommendation neither counts towards recovery nor is taken for gone
    pool_rec = ResourceRecommendation.objects.get(kind="pool", host="api-7d9f-x2")
    assert (pool_rec.status, pool_rec.calm_samples) == ("open", 0)


def test_a_pod_that_stopped_publishing_is_gone_only_after_its_entry_is_forgotten():
    redis = pools._redis()
    with use_thresholds(QUIET):
        for host, age in (("api-quiet", pools.FRESH_SECONDS + 60), ("api-replaced", pools.FORGET_SECONDS + 60)):
            ResourceRecommendation.objects.create(kind="pool", host=host, metric="pool_pct", value=100,
                                                  threshold=90, message="m")  # fmt: skip
            redis.hset(pools.KEY, f"{host}:7", json.dumps({"host": host, "pid": 7, "at": time.time() - age,
                                                           "pct": 100.0, "in_use": 4, "max_size": 4,
                                                           "waiting": 2}))  # fmt: skip
        tasks.monitor()
    statuses = dict(ResourceRecommendation.objects.filter(kind="pool").values_list("host", "status"))
    assert statuses == {"api-quiet": "open", "api-replaced": "resolved"}


def _api_entry(host: str, **figures) -> dict:
    return {"host": host, "pid": 12, "at": time.time(), "pct": 25.0, "in_use": 4, "max_size": 16, "waiting": 0,
            "cpu_pct": 97.0, "cpu_source": "cgroup v2", "cpu_limit": 2.0, "memory_pct": 60.0,
            "memory_source": "cgroup v2", "memory_limit_bytes": 3 * 2**30, "disk_pct": 12.0, **figures}  # fmt: skip


def test_an_api_pod_that_never_runs_the_monitor_is_sampled_from_what_it_published():
    """Before, only the workers that run the task were ever sampled: an api pod at 97% of its CPU limit was
    invisible to the recommendations, the CPU alert and the adaptive rate limits."""
    from apps.metrics.models import MetricPoint
    from apps.resources.models import ResourceSample

    pools._redis().hset(pools.KEY, "api-7d9f-x2:12", json.dumps(_api_entry("api-7d9f-x2", l1_cache_bytes=2**20)))
    sibling = _api_entry("api-7d9f-x2", pid=13, pct=5.0, l1_cache_bytes=2 * 2**20)  # a second gunicorn worker
    pools._redis().hset(pools.KEY, "api-7d9f-x2:13", json.dumps(sibling))
    pools._redis().hset(pools.KEY, "api-new-pod:9", json.dumps(_api_entry("api-new-pod", cpu_pct=None)))
    with use_thresholds({**QUIET, "cpu": 70.0}):
        tasks.monitor()
    api = ResourceSample.objects.get(host="api-7d9f-x2")
    assert (api.cpu_pct, api.cpu_source, api.cpu_limit, api.memory_pct, api.pool_pct) == (97.0, "cgroup v2", 2.0,
                                                                                            60.0, 25.0)  # fmt: skip
    assert not ResourceSample.objects.filter(host="api-new-pod").exists()  # its CPU is known from its next publish
    assert api.l1_cache_bytes == 3 * 2**20  # the sum of its processes' (the monitor's own L1 is the worker's)
    assert ResourceRecommendation.objects.filter(kind="cpu", host="api-7d9f-x2", status="open").exists()
    # the run's busiest host in the series: the pod's 97%, or the worker's own if it was busier still
    own = ResourceSample.objects.get(measured_at=None)
    assert MetricPoint.objects.get(series="host.cpu_pct").sum == max(97.0, own.cpu_pct)


def test_a_pod_publishes_its_cgroup_cpu_since_its_previous_publish(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in {
        "cgroup.controllers": "cpu memory",
        "cpu.max": "100000 100000",
        "memory.max": "1000",
        "memory.current": "250",
        "memory.stat": "inactive_file 0",
        "cpu.stat": "usage_usec 0",
    }.items():
        (root / name).write_text(text + "\n")  # fmt: skip
    clock = [100.0]
    monkeypatch.setattr(pools, "time", SimpleNamespace(monotonic=lambda: clock[0], time=time.time))
    monkeypatch.setattr(pools, "os", SimpleNamespace(getpid=lambda: 424242))  # a process that never published
    first = pools.pod_figures(root)
    assert first["cpu_pct"] is None and first["memory_pct"] == 25.0 and first["cpu_source"] == "cgroup v2"
    (root / "cpu.stat").write_text("usage_usec 2500000\n")  # 2.5 s of CPU in the next 5 s: half its one core
    clock[0] += 5
    assert pools.pod_figures(root)["cpu_pct"] == 50.0


def test_a_pool_not_open_holds_no_connection_and_reads_0_not_its_minimum(monkeypatch):
    """psycopg_pool counts the min_size connections an unopened pool would open as in use: a fixed-size pool
    (DB_POOL_MIN_SIZE = DB_POOL_MAX_SIZE, here 4 and 4) of a process that has not connected yet read 100%, and
    opened a 'raise DB_POOL_MAX_SIZE' recommendation for it. A real psycopg pool, never opened, stands in for
    this process's (the test's own connection is already taken from the real one)."""
    from psycopg_pool import ConnectionPool

    from apps.resources import services

    unopened = ConnectionPool(kwargs={}, min_size=4, max_size=4, open=False)
    monkeypatch.setitem(type(connections["default"])._connection_pools, "default", unopened)
    monkeypatch.setattr(pools.socket, "gethostname", lambda: "api-7d9f-x2")
    published = pools.pool_usage_publish()
    assert (published["pct"], published["in_use"], published["max_size"]) == (0.0, 0, 4)
    sample = services.resources_sample(cpu_interval=0.01)
    assert sample.pool_pct == 0.0
    with use_thresholds(QUIET):
        assert [r for r in services.recommendations_update(sample=sample) if r.kind == "pool"] == []


def test_one_publish_is_one_sample_however_many_monitor_runs_read_it():
    """An entry stays fresh for a minute: a pod that stopped publishing (its last entry read by two runs 30 s
    apart), or two runs close together, recorded one measurement twice, and two calm samples counted towards
    resolving its recommendation where there was one."""
    from apps.resources.models import ResourceSample

    entry = _api_entry("api-7d9f-x2", cpu_pct=97.0)
    pools._redis().hset(pools.KEY, "api-7d9f-x2:12", json.dumps(entry))
    with use_thresholds({**QUIET, "cpu": 70.0}):
        tasks.monitor()
        tasks.monitor()
        [cpu] = ResourceRecommendation.objects.filter(kind="cpu", host="api-7d9f-x2")
        assert ResourceSample.objects.filter(host="api-7d9f-x2").count() == 1 and cpu.occurrences == 1
        pools._redis().hset(pools.KEY, "api-7d9f-x2:12", json.dumps({**entry, "at": entry["at"] + 5}))
        tasks.monitor()  # its next publish is a sample of its own
    assert ResourceSample.objects.filter(host="api-7d9f-x2").count() == 2
    cpu.refresh_from_db()
    assert cpu.occurrences == 2
