"""Reads of the service registry."""

from django.db.models import Q, QuerySet

from apps.services.models import Service


def service_list(*, kind: str | None = None, active_only: bool = False) -> QuerySet[Service]:
    services = Service.objects.all()
    if kind:
        services = services.filter(kind=kind)
    if active_only:
        services = services.filter(is_active=True)
    return services.order_by("name")


def sees_every_service(user) -> bool:
    """Superusers and administrators: what belongs to any service, and to none, is theirs to see."""
    from apps.accounts.roles import ADMINISTRATORS

    return user.is_superuser or user.groups.filter(name=ADMINISTRATORS).exists()


def visible_service_ids(user) -> frozenset[int] | None:
    """The ids of the services this user sees; None when that is every service, present and future."""
    if sees_every_service(user):
        return None
    return frozenset(_services_open_to(user).values_list("pk", flat=True))


def of_visible_services(
    rows: QuerySet, visible_services: frozenset[int] | None, service_field: str = "service", *, unassigned: bool = False
) -> QuerySet:
    """The rows whose service (reached through `service_field`) is one of `visible_services` (None: all);
    `unassigned`: rows without a service too (an alert rule on every route is everyone's)."""
    if visible_services is None:
        return rows
    visible = Q(**{f"{service_field}__in": visible_services})
    if unassigned:
        visible |= Q(**{f"{service_field}__isnull": True})
    return rows.filter(visible)


def sees_all_traffic(visible_services: frozenset[int] | None) -> bool:
    """Whether no service is hidden from a viewer who sees `visible_services` (None: all). What is measured
    over every route (an alert rule of no service) sums every service's traffic, hidden ones included, so
    only such a viewer may see it."""
    return visible_services is None or not Service.objects.exclude(pk__in=visible_services).exists()


def services_visible_to(user) -> QuerySet[Service]:
    """The services a staff user may see: all for superusers and administrators; otherwise those open to
    every role and those restricted to one of the user's groups (object-level visibility)."""
    return Service.objects.all() if sees_every_service(user) else _services_open_to(user)


def _services_open_to(user) -> QuerySet[Service]:
    return Service.objects.filter(Q(visible_to=None) | Q(visible_to__in=user.groups.all())).distinct()
