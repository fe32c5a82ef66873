"""Per-minute request rollups: counts, errors and latency percentiles per route template, mergeable."""

from __future__ import annotations

from django.db import models


class RequestRollup(models.Model):
    """One minute of one route template, method, status class and client app, from every process.

    The HDR histogram is kept (compressed), so rollups from many processes merge exactly and a
    percentile over any range is computed from merged histograms, never averaged from percentiles.
    """

    minute = models.DateTimeField()
    route = models.CharField(max_length=200, help_text="The URL pattern, never the raw path.")
    method = models.CharField(max_length=8)
    status_class = models.CharField(max_length=3)
    client = models.CharField(max_length=120)
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    max_ms = models.FloatField(default=0.0)
    p50_ms = models.FloatField(default=0.0)
    p95_ms = models.FloatField(default=0.0)
    p99_ms = models.FloatField(default=0.0)
    histogram = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["minute", "route", "method", "status_class", "client"], name="rollup_key")
        ]
        indexes = [models.Index(fields=["minute"]), models.Index(fields=["route", "minute"])]

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} {self.method} {self.route} {self.status_class}"
