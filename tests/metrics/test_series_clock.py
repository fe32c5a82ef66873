"""The sampled series written without a time of their own (the per-minute cache series, inference's tokens/s)
are stamped on the database's clock, as the request rollups and the host samples are: stamped with the host's,
a worker an hour behind wrote its cache reads an hour back, out of the live feed's and the alerts' windows
(taken on the database's clock) and beside the wrong minutes of a chart of the request figures.

Only the metrics services' clock is moved; the database's is the real one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.caching import selectors as caching_selectors
from apps.metrics import selectors, services
from apps.metrics.models import MetricPoint
from apps.resources.selectors import database_now

pytestmark = pytest.mark.django_db
SLACK = timedelta(seconds=2)


class HostClockAnHourBehind:
    """django.utils.timezone as the metrics services see it, its now() an hour behind."""

    def now(self):
        return timezone.now() - timedelta(hours=1)

    def __getattr__(self, name):
        return getattr(timezone, name)


@pytest.fixture
def host_an_hour_behind(monkeypatch):
    monkeypatch.setattr(services, "timezone", HostClockAnHourBehind())


def test_cache_series_are_stamped_on_the_databases_clock(monkeypatch, host_an_hour_behind):
    cache.delete(services.CACHE_TOTALS_LOCK)
    cache.set("metrics:cache-totals", {"clock_ns": [100, 40]}, timeout=3600)
    monkeypatch.setattr(caching_selectors, "cache_stats",
                        lambda **_: {"clock_ns": {"tiers": {"source": {"requests": 400, "loads": 50}}}})  # fmt: skip
    before = database_now()
    assert services.cache_series_record() == {"cache.clock_ns.requests": 300, "cache.clock_ns.loads": 10}
    after = database_now()
    for point in MetricPoint.objects.filter(series__startswith="cache.clock_ns."):
        assert before - SLACK <= point.at <= after + SLACK
    # the live feed's hit rate, read on the database's clock, finds them
    now = database_now()
    assert selectors.cache_reads(namespace="clock_ns", since=now - timedelta(minutes=5), until=now + SLACK) == (
        300,
        10,
    )


def test_a_sample_without_a_time_is_stamped_on_the_databases_clock(host_an_hour_behind):
    before = database_now()
    services.metric_points_record(values={"inference.tokens_per_s": 12.5})
    after = database_now()
    point = MetricPoint.objects.get(series="inference.tokens_per_s")
    assert before - SLACK <= point.at <= after + SLACK


def test_a_sample_with_its_own_time_keeps_it():
    at = timezone.now() - timedelta(days=3)
    services.metric_points_record(values={"host.cpu_pct": 40.0}, at=at)
    assert MetricPoint.objects.get(series="host.cpu_pct").at == at
