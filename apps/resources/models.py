"""What the resource monitor saw, and what it recommends doing about it."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class ResourceSample(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    host = models.CharField(max_length=120)
    # A pod's published figures: when Redis stored them (its clock, see pools.PUBLISH): one publish, one sample.
    measured_at = models.DateTimeField(null=True, blank=True, help_text="When the pod measured a published sample.")
    cpu_pct = models.FloatField(help_text="Of the container's CPU limit when it has one (cpu_source), else the host's.")
    memory_pct = models.FloatField(help_text="Of the container's memory limit when it has one, else the host's.")
    # Where each figure came from: a pod's own cgroup limit, or the host (node) when no limit is set.
    cpu_source = models.CharField(max_length=10, default="host")
    memory_source = models.CharField(max_length=10, default="host")
    cpu_limit = models.FloatField(null=True, blank=True, help_text="The container's CPU limit, in cores.")
    memory_limit_bytes = models.BigIntegerField(null=True, blank=True)
    disk_pct = models.FloatField()
    db_connections_pct = models.FloatField(null=True, help_text="Server connections in use / max_connections.")
    pool_pct = models.FloatField(null=True, help_text="The sampling process's pool: in use / maximum.")
    redis_memory_bytes = models.BigIntegerField(null=True)
    redis_maxmemory_bytes = models.BigIntegerField(null=True)
    l1_cache_bytes = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["-at"]
        # One publish, one sample: two monitor runs at once (a backlog taken by two workers) each found it
        # unrecorded and both inserted it. Its unique index is the one the published rows are looked up by.
        constraints = [
            models.UniqueConstraint(
                fields=["host", "measured_at"], condition=models.Q(measured_at__isnull=False),
                name="one_sample_per_publish",
            )
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.host} @ {self.at:%Y-%m-%d %H:%M:%S}"


class ResourceRecommendation(models.Model):
    """One open problem per kind and host: re-sightings bump `last_seen`; it resolves only after a few
    samples in a row well under the threshold (services.RECOVER_FACTOR, RECOVER_SAMPLES)."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    kind = models.CharField(max_length=40)
    host = models.CharField(
        max_length=120,
        blank=True,
        help_text="The host whose samples crossed the threshold; empty for PostgreSQL and Redis, which every host "
        "shares.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    metric = models.CharField(max_length=40)
    value = models.FloatField()
    threshold = models.FloatField()
    message = models.TextField()
    occurrences = models.PositiveIntegerField(default=1)
    calm_samples = models.PositiveIntegerField(default=0, help_text="Samples in a row under the recovery level.")
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "host"], condition=models.Q(status="open"), name="one_open_recommendation_per_host"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.host} ({self.status})"


class ResourceThreshold(models.Model):
    """The level, in percent, at or above which the monitor opens a recommendation: edited in admin and read by the
    next sample (the RESOURCE_*_PCT settings only seed them)."""

    class Kind(models.TextChoices):
        CPU = "cpu", "CPU"
        MEMORY = "memory", "memory"
        DISK = "disk", "disk"
        POOL = "pool", "connection pool and PostgreSQL connections"
        REDIS_MEMORY = "redis_memory", "Redis memory (of maxmemory)"

    kind = models.CharField(max_length=20, choices=Kind.choices, unique=True)
    # Over 100 could never be crossed, and 0 is crossed by every sample: both silence or flood the admin.
    pct = models.FloatField(
        "threshold (%)", validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
        help_text="At or over this, a recommendation opens; it resolves under 90% of it.",
    )  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.pct:g}%"

    def clean(self) -> None:
        # NaN passes the range validators (it compares False to any bound) and is never crossed.
        if isinstance(self.pct, float) and not math.isfinite(self.pct):
            raise ValidationError({"pct": "A finite number."})
