"""Reads of the resources app."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.resources.models import ResourceSample, ResourceThreshold


def thresholds_current() -> dict[str, float]:
    """The thresholds as edited in admin; the RESOURCE_*_PCT settings for a kind with no row (deleted)."""
    return {**settings.RESOURCE_THRESHOLDS, **dict(ResourceThreshold.objects.values_list("kind", "pct"))}


def latest_samples_by_host(
    *, within: timedelta = timedelta(minutes=5), now: datetime | None = None
) -> dict[str, ResourceSample]:
    """Each host's latest sample, of the hosts that sampled within `within` (a gone pod drops out)."""
    now = now or timezone.now()
    latest: dict[str, ResourceSample] = {}
    for sample in ResourceSample.objects.filter(at__gte=now - within, at__lte=now).order_by("-at"):
        latest.setdefault(sample.host, sample)
    return latest
