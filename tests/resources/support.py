"""Helpers shared by the resource monitor's tests: the thresholds as edited in admin, for a block."""

from contextlib import contextmanager

from apps.resources.models import ResourceThreshold


@contextmanager
def use_thresholds(values: dict[str, float]):
    """The thresholds as edited in admin, for the block (101: never crossed, 0: always)."""
    before = dict(ResourceThreshold.objects.values_list("kind", "pct"))
    for kind, pct in values.items():
        ResourceThreshold.objects.update_or_create(kind=kind, defaults={"pct": pct})
    try:
        yield
    finally:
        for kind, pct in before.items():
            ResourceThreshold.objects.filter(kind=kind).update(pct=pct)
