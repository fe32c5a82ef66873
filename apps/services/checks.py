"""System checks on the registry's stored rows (`manage.py check`): warnings, so a deploy goes on."""

from __future__ import annotations

from django.core.checks import CheckMessage, Warning, register
from django.db import DatabaseError, transaction

UNUSABLE_BASE_URL = "services.W001"


@register("services")
def unusable_base_urls(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Services whose stored base URL breaks a rule added after they were saved (or was written by raw SQL
    or a fixture): the form and the API refuse such a URL, but a stored one is refused only at its next edit,
    and benchmarks of it fail until then. A database not reachable or not migrated yet says nothing here
    (`migrate` runs the checks before it creates the table)."""
    from apps.services.models import Service, base_url_problem

    try:
        with transaction.atomic():
            stored = list(Service.objects.exclude(base_url="").order_by("pk").values_list("pk", "base_url"))
    except DatabaseError:
        return []
    unusable = {pk: problem for pk, url in stored if (problem := base_url_problem(url))}
    if not unusable:
        return []
    listed = "; ".join(f"service {pk}: {problem}" for pk, problem in unusable.items())
    return [
        Warning(
            f"{len(unusable)} service(s) have a base URL that is no longer accepted ({listed}).",
            hint="Edit each one's base URL (admin: Services, the 'Base URL problem' column; or PATCH "
            "/api/v1/services/<slug>/): until then benchmarks of it fail with this reason.",
            obj="services.Service",
            id=UNUSABLE_BASE_URL,
        )
    ]


REFUSED_ROUTE_PREFIX = "services.W002"


@register("services")
def refused_route_prefixes(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Each service (by slug) whose stored route prefix the rules now refuse (routes.route_prefix_problem):
    it is kept until edited, but until then its metrics, SLO and forecasts count the requests it covers, the
    control plane's own among them (a prefix "a" took every admin call). Nothing else names them."""
    from apps.services.models import Service
    from apps.services.routes import route_prefix_problem

    try:
        with transaction.atomic():
            stored = list(Service.objects.exclude(route_prefix="").order_by("slug").values_list("slug", "route_prefix"))
    except DatabaseError:
        return []
    return [
        Warning(
            f"Service {slug}: its route prefix {prefix!r} is no longer accepted: {problem}",
            hint=f"Edit the route prefix of {slug} (admin: Services; or PATCH /api/v1/services/{slug}/): until "
            "then the requests it covers, the control plane's own included, count as its traffic, SLO and "
            "forecasts.",
            obj="services.Service",
            id=REFUSED_ROUTE_PREFIX,
        )
        for slug, prefix in stored
        if (problem := route_prefix_problem(prefix))
    ]


LOOK_ALIKE_NAMES = "services.W003"


@register("services")
def look_alike_names(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Each group of services whose stored names read the same (services.name_key: full-width or compatibility
    letters, runs of spaces, case): stored before names were normalised, or by raw SQL or a fixture. Admin and
    every service picker (alert rules, benchmarks, metrics) show them as one name; nothing renames them on its
    own (which one keeps the name is an administrator's decision), and each stays editable meanwhile."""
    from apps.services.models import Service
    from apps.services.services import name_key

    try:
        with transaction.atomic():
            stored = list(Service.objects.order_by("pk").values_list("slug", "name"))
    except DatabaseError:
        return []
    groups: dict[str, list[tuple[str, str]]] = {}
    for slug, name in stored:
        groups.setdefault(name_key(name), []).append((slug, name))
    return [
        Warning(
            f"Services {', '.join(f'{slug} ({name!r})' for slug, name in group)} have names that read the same.",
            hint="Rename all but one (admin: Services; or PATCH /api/v1/services/<slug>/ with a name): until then "
            "admin, the dashboard and the service pickers of alert rules, benchmarks and metrics show them alike.",
            obj="services.Service",
            id=LOOK_ALIKE_NAMES,
        )
        for group in groups.values()
        if len(group) > 1
    ]
