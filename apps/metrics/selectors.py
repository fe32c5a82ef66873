"""Reads of the metrics app: latency and throughput over the per-minute rollups."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from hdrh.histogram import HdrHistogram

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.services.models import Service


def route_latency(*, route_prefix: str = "", since=None, until=None) -> dict:
    """Requests, errors and merged percentiles of the routes under `route_prefix` in a time range."""
    rows = RequestRollup.objects.filter(route__startswith=route_prefix)
    if since is not None:
        rows = rows.filter(minute__gte=since)
    if until is not None:
        rows = rows.filter(minute__lt=until)
    merged = new_histogram()
    count = errors = 0
    for histogram, row_count, row_errors in rows.values_list("histogram", "count", "errors"):
        merged.add(HdrHistogram.decode(bytes(histogram)))
        count += row_count
        errors += row_errors
    if not count:
        return {"count": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": count,
        "errors": errors,
        "p50_ms": merged.get_value_at_percentile(50) / 1000,
        "p95_ms": merged.get_value_at_percentile(95) / 1000,
        "p99_ms": merged.get_value_at_percentile(99) / 1000,
        "max_ms": merged.get_max_value() / 1000,
    }


def service_p95_ms_recent(*, minutes: int = 5) -> dict[int, float]:
    """Each active service's p95 over the last minutes, from the routes under its `route_prefix`."""
    since = timezone.now() - timedelta(minutes=minutes)
    p95 = {}
    for service in Service.objects.filter(is_active=True).exclude(route_prefix=""):
        latency = route_latency(route_prefix=service.route_prefix, since=since)
        if latency["p95_ms"] is not None:
            p95[service.pk] = latency["p95_ms"]
    return p95
