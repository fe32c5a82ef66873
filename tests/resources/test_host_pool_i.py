"""One host running the worker beside the api (`make run`, the Procfile): its sample's pool figure is the
host's busiest pool, the api processes' published ones included, and the worker's own does not count the
connection its own monitor run holds. Before, the sample stored the worker's pool alone, measured inside the
task's transaction (10% of an idle pool of 10), while a recommendation said the api's pool there was full."""

import json
import socket
import time

import pytest
from django.db import connections

from apps.metrics.models import MetricPoint
from apps.resources import pools, services, tasks
from apps.resources.models import ResourceRecommendation, ResourceSample
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db
QUIET = {"cpu": 101.0, "memory": 101.0, "disk": 101.0, "pool": 90.0, "redis_memory": 101.0}


@pytest.fixture(autouse=True)
def _fresh_hash():
    pools._redis().delete(pools.KEY)
    yield
    pools._redis().delete(pools.KEY)


def _publish(host: str, pct: float) -> None:
    entry = {"host": host, "pid": 4242, "at": time.time(), "pct": pct, "in_use": 4, "max_size": 4, "waiting": 3,
             "cpu_pct": 5.0, "memory_pct": 20.0, "disk_pct": 10.0}  # fmt: skip
    pools._redis().hset(pools.KEY, f"{host}:4242", json.dumps(entry))


def test_the_hosts_sample_takes_its_api_processes_full_pool():
    _publish(socket.gethostname(), 100.0)
    with use_thresholds(QUIET):
        tasks.monitor()
    own = ResourceSample.objects.get(host=socket.gethostname(), measured_at=None)
    assert own.pool_pct == 100.0  # before: the worker's own pool (its own connection: 1/max)
    assert MetricPoint.objects.get(series="host.pool_pct").sum == 100.0
    [pool_rec] = ResourceRecommendation.objects.filter(kind="pool", status="open")
    assert (pool_rec.host, pool_rec.value) == (socket.gethostname(), 100.0)


def test_a_calmer_api_pool_on_the_host_does_not_lower_the_workers_busier_one(monkeypatch):
    _publish(socket.gethostname(), 0.0)
    monkeypatch.setattr(services, "_own_pool_pct", lambda: 60.0)
    with use_thresholds(QUIET):
        tasks.monitor()
    assert ResourceSample.objects.get(host=socket.gethostname(), measured_at=None).pool_pct == 60.0


def test_the_monitors_own_connection_is_not_counted_in_its_pool(monkeypatch):
    """The monitor samples inside its own transaction, on a connection of the pool it measures: an idle pool
    of 10 read 10%."""
    connections["default"].ensure_connection()  # as in the task's transaction
    idle = {"size": 2, "available": 1, "in_use": 1, "waiting": 0, "min_size": 2, "max_size": 10, "utilization": 0.1}
    monkeypatch.setattr(services, "database_pool_stats", lambda alias="default": dict(idle))
    assert services.resources_sample(cpu_interval=0.01).pool_pct == 0.0
    busy = {**idle, "size": 10, "available": 0, "in_use": 10, "utilization": 1.0}
    monkeypatch.setattr(services, "database_pool_stats", lambda alias="default": dict(busy))
    assert services.resources_sample(cpu_interval=0.01).pool_pct == 90.0  # the other nine
    full = {**busy, "waiting": 2}
    monkeypatch.setattr(services, "database_pool_stats", lambda alias="default": dict(full))
    assert services.resources_sample(cpu_interval=0.01).pool_pct == 100.0  # requests queued: full
