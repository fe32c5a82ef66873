"""The per-minute cache series while Redis (the shared cache holding the last totals) is down, and after: the
task failed every minute of an outage (ConnectionError), and once Redis was back the outage's reads all landed
in one minute's point. Real PostgreSQL and Redis; an unreachable Redis is a closed port."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings

from apps.caching import selectors as caching_selectors
from apps.core.local_cache import shared_cache_breaker
from apps.metrics import services, tasks
from apps.metrics.models import MetricPoint
from apps.resources import selectors as resources_selectors
from tests.helpers import closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_totals():
    cache.delete(services.CACHE_TOTALS_LOCK)
    cache.delete("metrics:cache-totals")
    shared_cache_breaker.reset()
    yield
    shared_cache_breaker.reset()
    cache.delete(services.CACHE_TOTALS_LOCK)
    cache.delete("metrics:cache-totals")


@pytest.fixture
def totals(monkeypatch) -> dict:
    """The namespaces' cumulative reads and loads, as the stats rows hold them (set by each test)."""
    now = {"requests": 100, "loads": 10}
    monkeypatch.setattr(caching_selectors, "cache_stats", lambda **_: {"ns_i": {"tiers": {"source": dict(now)}}})
    return now


def test_with_redis_down_the_collection_records_nothing_and_does_not_fail(totals):
    unreachable = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                               "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
                               "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2}}}  # fmt: skip
    with override_settings(CACHES=unreachable):
        for _ in range(3):  # every minute of the outage; the breaker may be open or probing
            result = tasks.collect.apply()
            assert result.successful(), result.traceback
            assert result.result == 0
    assert not MetricPoint.objects.filter(series__startswith="cache.ns_i.").exists()


def test_the_reads_of_a_ten_minute_gap_are_spread_over_its_minutes(totals, monkeypatch):
    assert services.cache_series_record() == {}  # the totals remembered before the outage
    real = resources_selectors.database_now
    monkeypatch.setattr(resources_selectors, "database_now", lambda: real() + timedelta(minutes=10))
    totals.update(requests=400, loads=40)  # 300 reads in the ten minutes Redis was away
    assert services.cache_series_record() == {"cache.ns_i.requests": 300, "cache.ns_i.loads": 30}

    points = MetricPoint.objects.filter(series="cache.ns_i.requests").order_by("at")
    assert sum(point.sum for point in points) == pytest.approx(300)  # none lost, none counted twice
    assert [round(point.sum, 6) for point in points] == [30.0] * 10  # before: one point of 300
    minutes = {point.at.replace(second=0, microsecond=0) for point in points}
    assert len(minutes) == 10


def test_the_next_minute_is_one_point_as_before(totals):
    services.cache_series_record()
    totals.update(requests=160, loads=12)
    assert services.cache_series_record() == {"cache.ns_i.requests": 60, "cache.ns_i.loads": 2}
    assert list(MetricPoint.objects.filter(series="cache.ns_i.requests").values_list("sum", flat=True)) == [60.0]
