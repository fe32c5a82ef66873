"""Which URL patterns a service's route prefix may claim. A request's metrics belong to the service with the
longest route prefix its URL pattern starts with: a prefix must name a hospital service's routes, never the
control plane's own (admin, dashboard, health, its own API), whose requests would otherwise count as that
service's traffic, SLO and forecast."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, get_urlconf

# The routes served here for hospital services (seed_demo's clinical-api, fhir-api and inference services):
# the patient API, FHIR R4 and the inference endpoints. Every other pattern of the URLconf is the product's.
SERVICE_ROUTE_ROOTS = ("api/v1/patients/", "fhir", "api/v1/inference/<slug:name>/")

_OPEN = "<(["  # where a pattern stops being literal (a converter, a regex group): below it, any path matches


def _walk(patterns: list, prefix: str = "") -> list[str]:
    # Joined as Django joins a request's route (ResolverMatch.route): a regex's "^" dropped past the first part.
    routes = []
    for pattern in patterns:
        part = str(pattern.pattern)
        route = prefix + (part[1:] if prefix and part.startswith("^") else part)
        if isinstance(pattern, URLResolver):
            routes.extend(_walk(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            routes.append(route.removeprefix("^").removesuffix("$"))
    return routes


@lru_cache(maxsize=4)
def _routes(urlconf: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    every = tuple(sorted(set(_walk(get_resolver(urlconf).url_patterns))))
    own = [route for route in every if not route.startswith(SERVICE_ROUTE_ROOTS)]
    static = settings.STATIC_URL.lstrip("/")
    if static and "://" not in static:
        own.append(static + "<path>")  # served by WhiteNoise, outside the URLconf
    return every, tuple(sorted(own))


def url_routes() -> tuple[str, ...]:
    """Every URL pattern of the URLconf, as a request's metrics record it (e.g. api/v1/patients/<id:patient_id>/)."""
    return _routes(get_urlconf() or settings.ROOT_URLCONF)[0]


def own_routes() -> tuple[str, ...]:
    """The control plane's own URL patterns (static files included): no service's."""
    return _routes(get_urlconf() or settings.ROOT_URLCONF)[1]


def route_prefix_problem(prefix: str) -> str | None:
    """Why a route prefix may not be a service's (the model's rules past its form), or None; "" is none."""
    if not prefix:
        return None
    if not prefix.isascii():
        # "\u0430pi/v1/patients/" (a Cyrillic a, U+0430) reads as clinical-api's prefix and matches no route.
        others = ", ".join(sorted({f"U+{ord(c):04X}" for c in prefix if not c.isascii()}))
        return f"ASCII characters only, as URL patterns are: not {others}."
    if not prefix.endswith("/") and prefix not in url_routes():
        # "a" claimed every unowned route starting with "a": admin/..., api/schema/.
        return "End it with '/' (a whole path segment), or give a whole URL pattern, e.g. api/v1/patients/."
    covered = [route for route in own_routes() if route.startswith(prefix) or _inside(prefix, route)]
    if covered:
        heads = list(dict.fromkeys(_head(route) for route in covered))
        shown = ", ".join(heads[:3]) + (f" and {len(heads) - 3} more" if len(heads) > 3 else "")
        return (
            f"It covers the control plane's own routes ({shown}): their requests would count as this service's. "
            "Choose a hospital service's routes, e.g. api/v1/patients/."
        )
    return None


def _head(route: str) -> str:
    """The literal start of a pattern, before its first converter or regex group (the whole of a plain one)."""
    return route[: min((route.index(c) for c in _OPEN if c in route), default=len(route))]


def _inside(prefix: str, route: str) -> bool:
    """The prefix lies under the part of `route` that matches any path (dashboard/<path:subpath>)."""
    head = _head(route)
    return head != route and head.endswith("/") and prefix.startswith(head)
