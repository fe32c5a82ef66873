"""Prometheus exposition: request latency from every process (multiprocess mode), plus the cache,
rate-limit and resource figures the database already holds, read when /metrics is scraped."""

from __future__ import annotations

import glob
import logging
import os
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models.functions import Now
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from apps.core.breaker import metrics_database_breaker

# Labels are route templates, methods and status classes only: never a raw path or an identifier.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
REQUEST_SECONDS = Histogram(
    "cp_http_request_duration_seconds",
    "Request latency by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=REQUEST_BUCKETS,
)
# Labelled by the deployment's name (a slug an admin chose) and the mode that failed: never a call's input.
INFERENCE_LOAD_FAILURES = Counter(
    "cp_inference_load_failures",
    "Failed model loads by deployment and quantization mode, in the serving processes.",
    ["deployment", "mode"],
)

logger = logging.getLogger(__name__)
HOST_FRESH = timedelta(minutes=5)


def request_histogram_add(*, route: str, method: str, status_class: str, histogram, total_seconds: float) -> None:
    """Add a flushed HDR histogram (microseconds) to the Prometheus one: per flush, not per request.

    Bucket by bucket through the Histogram's value objects, which is what `observe` does one value
    at a time; request timing then costs a request an HDR record and nothing more.
    """
    child = REQUEST_SECONDS.labels(route, method, status_class)
    per_bucket = [0] * (len(REQUEST_BUCKETS) + 1)
    for item in histogram.get_recorded_iterator():
        seconds = item.value_iterated_to / 1e6
        index = next((i for i, bound in enumerate(REQUEST_BUCKETS) if seconds <= bound), len(REQUEST_BUCKETS))
        per_bucket[index] += item.count_at_value_iterated_to
    for value, count in zip(child._buckets, per_bucket, strict=True):
        if count:
            value.inc(count)
    child._sum.inc(total_seconds)


class DatabaseFiguresCollector:
    """Figures every process contributes to through the database: cache counters, limits, resources."""

    def collect(self):
        """With the database away, the rest of the scrape still answers: the request latency and errors of
        the outage itself must reach Prometheus, not a 500 for the whole page."""
        families = []
        if metrics_database_breaker.available():
            try:
                families = list(self._database_families())
            except DatabaseError:
                metrics_database_breaker.failure()
                logger.warning("/metrics: the database figures are left out", exc_info=True)
            else:
                metrics_database_breaker.success()
        yield GaugeMetricFamily(
            "cp_database_figures_up",
            "1 when the cache, limit and host figures could be read.",
            value=int(bool(families)),
        )
        yield from families

    def _database_families(self):
        from apps.caching.selectors import cache_stats
        from apps.ratelimits.models import RateLimitPolicy
        from apps.resources.selectors import latest_samples_by_host

        hits = CounterMetricFamily("cp_cache_hits", "Cache hits by namespace and tier.", labels=["namespace", "tier"])
        misses = CounterMetricFamily(
            "cp_cache_misses", "Cache misses by namespace and tier.", labels=["namespace", "tier"]
        )
        loads = CounterMetricFamily("cp_cache_loads", "Loads from the source by namespace.", labels=["namespace"])
        ratio = GaugeMetricFamily("cp_cache_hit_ratio", "Share of reads served by a cache tier.", labels=["namespace"])
        for namespace, summary in cache_stats().items():
            for tier, counts in summary["tiers"].items():
                if tier != "source":
                    hits.add_metric([namespace, tier], counts["hits"])
                    misses.add_metric([namespace, tier], counts["misses"])
            loads.add_metric([namespace], summary["tiers"].get("source", {}).get("loads", 0))
            if summary["hit_rate"] is not None:
                ratio.add_metric([namespace], summary["hit_rate"])
        yield from (hits, misses, loads, ratio)

        limit = GaugeMetricFamily("cp_rate_limit_requests", "Requests per period in force.", labels=["scope"])
        # The lapse judged on the database's clock, as the limiter judges it: a host whose clock ran ahead showed
        # the configured limit while the tightening was still enforced.
        for policy in RateLimitPolicy.objects.filter(enabled=True).annotate(database_now=Now()):
            limit.add_metric([policy.scope], policy.requests_in_force(policy.database_now))
        yield limit

        # Each host's latest sample, labelled: the latest of any host made one series jump between pods from
        # one scrape to the next (one at 95% CPU, the next at 10%). A host silent for HOST_FRESH is left out.
        latest = latest_samples_by_host(within=HOST_FRESH)
        for name in ("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct"):
            gauge = GaugeMetricFamily(f"cp_host_{name}", f"Latest resource sample per host: {name}.", labels=["host"])
            for host, sample in sorted(latest.items()):
                if getattr(sample, name) is not None:
                    gauge.add_metric([host], getattr(sample, name))
            yield gauge


class ProcessFilesCollector(multiprocess.MultiProcessCollector):
    """The processes' files, read as prometheus_client does, but for a file another process is creating (empty
    for an instant, before it is sized) or one a process killed at that instant left empty: reading it raised
    struct.error and the whole scrape answered 500 (the fresh-clone CI hit it: /metrics while a test's worker
    started). Such a file holds no figure yet; it is left out. A file removed between listing and reading (an
    exited process's gauges) is listed again once."""

    def collect(self):
        try:
            return self.merge(self._files_with_figures(), accumulate=True)
        except FileNotFoundError:  # removed between listing and reading: listed again
            return self.merge(self._files_with_figures(), accumulate=True)

    def _files_with_figures(self) -> list[str]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= 8:  # its used-bytes header and the first value's length at least
                    files.append(path)
            except OSError:
                continue  # removed meanwhile
        return files


def exposition() -> bytes:
    registry = CollectorRegistry()
    ProcessFilesCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(DatabaseFiguresCollector())
    return generate_latest(registry)
