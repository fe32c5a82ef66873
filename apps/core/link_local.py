"""Link-local addresses (169.254.0.0/16, fe80::/10) refused as a place the product sends its own requests.

The cloud metadata service answers at 169.254.169.254 (fd00:ec2::254 aside, which is no link-local address):
a service's base URL or an alert's webhook there had health checks, benchmarks and webhooks fetch the host's
credentials on a staff member's say. Loopback and private addresses stay allowed: hospitals run their services
on private networks, and the demo's services answer on 127.0.0.1. Only an address written in the URL is
checked; a host name is resolved at send time by whoever sends."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

LINK_LOCAL_MESSAGE = (
    "Not a link-local address (169.254.0.0/16 or fe80::/10): the cloud metadata service answers there. "
    "Use the host's own name or address; localhost and private addresses are fine."
)


def is_link_local_url(url: str) -> bool:
    """Whether `url`'s host is a link-local IP address (an IPv4-mapped IPv6 one included)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    host = host.split("%", 1)[0].rstrip(".")  # "fe80::1%eth0", "169.254.169.254."
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local


def refuse_link_local_url(value: str) -> None:
    """A model or form field validator: a URL whose host is a link-local address is a field error."""
    if value and is_link_local_url(value):
        raise ValidationError(LINK_LOCAL_MESSAGE, code="link_local")
