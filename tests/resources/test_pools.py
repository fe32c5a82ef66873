"""The pools requests wait on are those of the web processes, on other hosts than the worker that runs the
monitor: each publishes its pool's use to Redis, and the monitor judges each host by its busiest pool.

Real PostgreSQL pool (psycopg_pool, DB_POOL_MAX_SIZE of the test settings) and real Redis; only the host
name of the publishing process is changed, to stand for an api pod.
"""

import json
import threading
import time

import pytest
from django.db import connections
from django.test import override_settings

from apps.resources import pools, tasks
from apps.resources.models import ResourceRecommendation
from tests.resources.conftest import use_thresholds

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
