"""What the monitor writes into the `host.<figure>` series (the dashboard's figure past the 30 days of per-host
samples): each run's busiest host, not the mean of unlike hosts. Real PostgreSQL and Redis; an api pod is an
entry published to Redis under another host name, as its processes publish them."""

import json
import time

import pytest

from apps.metrics.models import MetricPoint
from apps.resources import pools, tasks
from apps.resources.models import ResourceSample
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db
QUIET = {"cpu": 101.0, "memory": 101.0, "disk": 101.0, "pool": 101.0, "redis_memory": 101.0}


@pytest.fixture(autouse=True)
def _fresh_hash():
    pools._redis().delete(pools.KEY)
    yield
    pools._redis().delete(pools.KEY)


def _publish(host: str, *, cpu: float, memory: float) -> None:
    entry = {"host": host, "pid": 12, "at": time.time(), "pct": 5.0, "in_use": 1, "max_size": 16, "waiting": 0,
             "cpu_pct": cpu, "cpu_source": "cgroup v2", "cpu_limit": 2.0, "memory_pct": memory,
             "memory_source": "cgroup v2", "memory_limit_bytes": 2**30, "disk_pct": 0.5}  # fmt: skip
    pools._redis().hset(pools.KEY, f"{host}:12", json.dumps(entry))


def _points(series: str) -> list[tuple[float, int]]:
    return list(MetricPoint.objects.filter(series=series).values_list("sum", "count"))


def test_a_run_writes_its_busiest_host_not_a_mean_with_an_idle_pod():
    """The worker's own sample beside an idle api pod (0.5% of its memory, 0% CPU): the series got a point for
    each, whose mean (the dashboard past 30 days) was about half the worker's figure, a level no host had."""
    _publish("api-idle", cpu=0.0, memory=0.5)
    with use_thresholds(QUIET):
        tasks.monitor()
    own = ResourceSample.objects.get(measured_at=None)
    assert ResourceSample.objects.filter(host="api-idle").exists()
    assert _points("host.memory_pct") == [(own.memory_pct, 1)]
    assert _points("host.disk_pct") == [(own.disk_pct, 1)]


def test_a_pod_near_its_limit_is_the_runs_figure():
    """An api pod at 100% of its memory limit beside the worker: the point is the pod's, not diluted."""
    _publish("api-full", cpu=100.0, memory=100.0)
    with use_thresholds(QUIET):
        tasks.monitor()
    assert _points("host.memory_pct") == [(100.0, 1)]
    assert _points("host.cpu_pct") == [(100.0, 1)]
    # nothing recorded again: a run that finds only publishes already recorded writes the worker's own
    with use_thresholds(QUIET):
        tasks.monitor()
    own = ResourceSample.objects.filter(measured_at=None).latest("at")
    assert sorted(_points("host.memory_pct")) == sorted([(100.0, 1), (own.memory_pct, 1)])
