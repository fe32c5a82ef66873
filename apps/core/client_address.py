"""The caller's address behind the hospital's reverse proxies.

Behind an ingress every request's REMOTE_ADDR is the ingress pod: the audit trail would name it as the
source of every PHI read, anonymous callers would share one rate-limit quota and the axes lockout would
lock the ingress out. X-Forwarded-For says who the proxies talked to, but any caller can write one, so
it is read only when the connection comes from a proxy named in TRUSTED_PROXIES, and then from the right
(the hops our own proxies appended) to the first address that is not one of ours: entries left of that
are whatever the caller chose to send. python-ipware trusts proxies by their position in the chain, not
by the connection's own address, so it cannot give this guarantee.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def caller_network(address: str) -> str:
    """Who a per-caller budget (a rate limit, the failed-authentication budget) is kept for: an IPv6 caller is
    its /64, since a host is given one and may send from any of its 2^64 addresses, each of which would
    otherwise be a fresh budget. An IPv4 address written as IPv6 (::ffff:a.b.c.d) is the IPv4 one."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


def parse_trusted_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDR networks (or single addresses) from settings; a typo stops start-up instead of trusting nobody."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES: {entry!r} is not an address or a CIDR network") from exc
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:
            # ::ffff:10.42.0.0/112, as a dual-stack socket shows the proxy: addresses are compared as IPv4 (see
            # _address), so the IPv6 form matched no connection and every request was the proxy's own.
            network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(remote_addr: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The address of the first hop, from the right, that is not one of our proxies.

    A malformed hop, or a loopback one, ends the walk at the last proxy we trust: what lies left of it cannot
    be told apart from a made-up value. TRUSTED_PROXIES must name the proxies only: any host inside it can
    claim any address (in a cluster, name the ingress controller's pods, or keep other pods from reaching the
    api with the NetworkPolicy component).
    """
    connection = _address(remote_addr)
    if connection is None or not trusted or not _trusted(connection, trusted):
        return remote_addr
    client = connection
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None or (address.is_loopback and not connection.is_loopback):
            # Garbage, or loopback named by a connection that is not: no proxy of ours forwards from this
            # host, and /metrics and other allow-lists trust loopback.
            break
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)


# What a proxy tells us about the original request: the scheme (HSTS, secure cookies, https links), host and
# port (absolute links). Anyone can write them, so once proxies are named only theirs are kept.
FORWARDED_REQUEST_HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")


class ClientAddressMiddleware:
    """Sets REMOTE_ADDR to the caller behind our proxies, before anything reads it (audit, limiter, axes).

    The connection's own address stays in META["PROXY_REMOTE_ADDR"] when it differs. X-Forwarded-Proto, -Host
    and -Port are dropped from a connection that is not one of our proxies. With no proxy named every peer is
    believed, as before (the kustomize base names none and relies on its ingress's X-Forwarded-Proto).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.trusted = parse_trusted_proxies(settings.TRUSTED_PROXIES)
        if not self.trusted:
            raise MiddlewareNotUsed  # no proxy named: nothing on the hot path

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        remote_addr = meta.get("REMOTE_ADDR", "")
        connection = _address(remote_addr)
        if connection is None or not _trusted(connection, self.trusted):
            for header in FORWARDED_REQUEST_HEADERS:
                meta.pop(header, None)
        client = client_address(remote_addr, meta.get("HTTP_X_FORWARDED_FOR", ""), self.trusted)
        if client != remote_addr:
            meta["PROXY_REMOTE_ADDR"] = remote_addr
            meta["REMOTE_ADDR"] = client
        return self.get_response(request)
