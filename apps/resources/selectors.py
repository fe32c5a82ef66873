"""Reads of the resources app."""

from __future__ import annotations

from django.conf import settings

from apps.resources.models import ResourceThreshold


def thresholds_current() -> dict[str, float]:
    """The thresholds as edited in admin; the RESOURCE_*_PCT settings for a kind with no row (deleted)."""
    return {**settings.RESOURCE_THRESHOLDS, **dict(ResourceThreshold.objects.values_list("kind", "pct"))}
