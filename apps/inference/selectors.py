"""Reads of the inference app: the latest measured table per deployment."""

from __future__ import annotations

from apps.inference.models import ModelDeployment, QuantizationProfile


def latest_profiles(deployment: ModelDeployment) -> list[QuantizationProfile]:
    """The profiles of the most recent measurement, the chosen mode first, then the fastest."""
    newest = deployment.profiles.order_by("-measured_at").values_list("measured_at", flat=True).first()
    if newest is None:
        return []
    rows = list(deployment.profiles.filter(measured_at=newest))
    return sorted(rows, key=lambda p: (not p.chosen, not p.available, -(p.tokens_per_s or p.sequences_per_s or 0)))
