"""Every write to the service registry: the API, the admin and seeding go through here."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.services.models import Service

EDITABLE_FIELDS = (
    "name",
    "slug",
    "kind",
    "base_url",
    "route_prefix",
    "owner_team",
    "description",
    "is_active",
    "slo_p95_ms",
    "slo_p99_ms",
    "slo_avg_ms",
    "slo_min_rps",
    "slo_error_rate_pct",
)


@transaction.atomic
def service_create(*, name: str, slug: str, **fields: Any) -> Service:
    """Register a service; SLO targets not given take the brief's defaults."""
    service = Service(name=name, slug=slug, **_editable(fields))
    service.full_clean()
    service.save()
    return service


@transaction.atomic
def service_update(*, service: Service, **fields: Any) -> Service:
    """Change a service, validating the whole row (e.g. p95 ≤ p99) before it is saved."""
    for field, value in _editable(fields).items():
        setattr(service, field, value)
    service.full_clean()
    service.save()
    return service


@transaction.atomic
def service_ensure(*, slug: str, **fields: Any) -> tuple[Service, bool]:
    """Create a service if its slug is new; leave an existing one as admins edited it."""
    existing = Service.objects.filter(slug=slug).first()
    if existing is not None:
        return existing, False
    return service_create(slug=slug, **fields), True


def _editable(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"Not editable on Service: {', '.join(sorted(unknown))}")
    return fields
