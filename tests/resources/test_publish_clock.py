"""A pod's publish is judged fresh or stale on Redis's clock, which stamps it, not on the publishing pod's nor
the reading worker's: hosts' clocks disagree, and a skewed one had its pod dropped, or kept long after it
stopped publishing. Real Redis and a real (unopened) psycopg pool; only this process's wall clock is skewed,
as it would be on another host."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.db import connections
from psycopg_pool import ConnectionPool

from apps.resources import pools

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_hash():
    pools._redis().delete(pools.KEY)
    yield
    pools._redis().delete(pools.KEY)


@pytest.fixture
def skew_clock(monkeypatch):
    """Sets this process's wall clock (as the pools module reads it) `offset` seconds off; 0 puts it back."""

    def skew(offset: float) -> None:
        monkeypatch.setattr(pools, "time", SimpleNamespace(monotonic=time.monotonic, time=lambda: time.time() + offset))

    return skew


def _publish_as(monkeypatch, host: str) -> dict:
    unopened = ConnectionPool(kwargs={}, min_size=4, max_size=4, open=False)
    monkeypatch.setitem(type(connections["default"])._connection_pools, "default", unopened)
    monkeypatch.setattr(pools.socket, "gethostname", lambda: host)
    published = pools.pool_usage_publish()
    monkeypatch.undo()
    return published


def _redis_now() -> float:
    seconds, microseconds = pools._redis().time()
    return seconds + microseconds / 1e6


def test_a_pod_whose_clock_runs_behind_is_not_dropped_as_stale(monkeypatch, skew_clock):
    skew_clock(-2 * pools.FRESH_SECONDS)  # the api pod's clock, two minutes behind
    published = _publish_as(monkeypatch, "api-behind")
    assert published is not None
    skew_clock(0)  # the worker running the monitor
    assert "api-behind" in pools.pool_usage_by_host()  # before: 120 s old, dropped at once


def test_a_worker_whose_clock_runs_ahead_keeps_a_fresh_publish(monkeypatch, skew_clock):
    _publish_as(monkeypatch, "api-pod")
    skew_clock(2 * pools.FRESH_SECONDS)
    assert "api-pod" in pools.pool_usage_by_host()  # before: dropped by the worker two minutes ahead


def test_a_pod_whose_clock_runs_ahead_goes_stale_once_it_stops_publishing(monkeypatch, skew_clock):
    skew_clock(3600)  # the api pod's clock, an hour ahead: its entries read as fresh for an hour after its last
    _publish_as(monkeypatch, "api-ahead")
    skew_clock(0)
    two_minutes_later = _redis_now() + 2 * pools.FRESH_SECONDS  # `now` is given on Redis's clock
    assert "api-ahead" not in pools.pool_usage_by_host(now=two_minutes_later)


def test_the_published_at_is_redis_time(monkeypatch, skew_clock):
    skew_clock(-3600)
    before = _redis_now()
    entry = _publish_as(monkeypatch, "api-pod")
    after = _redis_now()
    stored = pools._parsed(pools._redis().hget(pools.KEY, f"api-pod:{entry['pid']}"))
    assert stored["at"] == entry["at"]
    assert before - 0.001 <= stored["at"] <= after + 0.001  # a float's last bit aside
