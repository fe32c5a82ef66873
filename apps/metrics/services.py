"""Writes of the metrics app: merging per-process latency histograms into the per-minute rollups."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from hdrh.histogram import HdrHistogram

from apps.metrics.models import RequestRollup


def _summarize(row: RequestRollup, histogram: HdrHistogram) -> None:
    row.p50_ms = histogram.get_value_at_percentile(50) / 1000
    row.p95_ms = histogram.get_value_at_percentile(95) / 1000
    row.p99_ms = histogram.get_value_at_percentile(99) / 1000
    row.max_ms = histogram.get_max_value() / 1000
    row.histogram = histogram.encode()


def rollups_merge(series: dict[tuple, object]) -> None:
    """Add each (minute, route, method, status class, client) series to its rollup row, creating it."""
    for (minute, route, method, status_class, client), data in sorted(series.items(), key=lambda kv: kv[0]):
        key = {
            "minute": datetime.fromtimestamp(minute, UTC),
            "route": route,
            "method": method,
            "status_class": status_class,
            "client": client,
        }
        for _ in range(2):  # a concurrent first insert of the same key: merge into the winner's row
            try:
                with transaction.atomic():
                    row = RequestRollup.objects.select_for_update().filter(**key).first()
                    if row is None:
                        row = RequestRollup(**key)
                        histogram = data.histogram
                    else:
                        histogram = HdrHistogram.decode(bytes(row.histogram))
                        histogram.add(data.histogram)
                    row.count += data.count
                    row.errors += data.errors
                    row.total_ms += data.total_us / 1000
                    _summarize(row, histogram)
                    row.save()
                break
            except IntegrityError:
                continue
