"""/metrics for Prometheus: a bearer token (METRICS_TOKEN) or an allowed client address."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from apps.core.views import probe
from apps.metrics.prometheus import exposition

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or networks (10.0.0.0/8: a pod network, whose scraper's address changes); one that is neither
    is left out, and said once."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS: %r is not an address or network; ignored", entry)
    return tuple(networks)


def _address_allowed(remote: str) -> bool:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    # A server listening on [::] sees an IPv4 client as ::ffff:a.b.c.d
    address = getattr(address, "ipv4_mapped", None) or address
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


def may_read_metrics(request: HttpRequest) -> bool:
    """A metrics token, or an address in METRICS_ALLOWED_IPS: who may read /metrics and /readyz's details."""
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), settings.METRICS_TOKEN.encode())
    return _address_allowed(request.META.get("REMOTE_ADDR", ""))


@probe
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return JsonResponse({"detail": "Not allowed to read metrics.", "code": "forbidden"}, status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
