"""The per-minute cache series, collected by two workers at once (the backlog of a worker that was down):
real PostgreSQL and Redis, each collection on its own thread and connection."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.db import connection

from apps.caching import selectors as caching_selectors
from apps.metrics import services
from apps.metrics.models import MetricPoint

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_collections_at_once_record_a_minutes_reads_once(monkeypatch):
    cache.delete("metrics:cache-totals:lock")
    cache.set("metrics:cache-totals", {"patient_data": [40, 5]}, timeout=3600)  # the last minute's totals
    both_read, arrivals, arrived = threading.Event(), threading.Lock(), []

    def totals_read_by_both(**_):
        """Cumulative totals now (the stats rows are other tests' business); both collections read them
        before either stores them, if they can: one kept out is waited for a few seconds only."""
        with arrivals:
            arrived.append(1)
            if len(arrived) == 2:
                both_read.set()
        both_read.wait(timeout=3)
        return {"patient_data": {"tiers": {"source": {"requests": 100, "loads": 10}}}}

    monkeypatch.setattr(caching_selectors, "cache_stats", totals_read_by_both)

    def collect():
        try:
            services.cache_series_record()
        finally:
            connection.close()

    workers = [threading.Thread(target=collect) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    recorded = dict(MetricPoint.objects.filter(series__startswith="cache.patient_data.").values_list("series", "sum"))
    assert MetricPoint.objects.filter(series__startswith="cache.patient_data.").count() == 2
    assert recorded == {"cache.patient_data.requests": 60, "cache.patient_data.loads": 5}
    assert cache.get("metrics:cache-totals:lock") is None  # released for the next minute's
