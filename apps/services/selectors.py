"""Reads of the service registry."""

from django.db.models import QuerySet

from apps.services.models import Service


def service_list(*, kind: str | None = None, active_only: bool = False) -> QuerySet[Service]:
    services = Service.objects.all()
    if kind:
        services = services.filter(kind=kind)
    if active_only:
        services = services.filter(is_active=True)
    return services.order_by("name")
