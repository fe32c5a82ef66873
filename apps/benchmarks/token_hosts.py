"""BENCHMARK_TOKEN_HOSTS' entry syntax, checked at start-up (plain Python, no Django: safe at settings time).

apps.benchmarks.models._allowed_origins reads the entries with the same parser: one it cannot read (`http://x`, `*`,
`host:`) matches nothing, so a mistyped list started fine and every benchmark run was refused its token."""

from __future__ import annotations

import ipaddress
import re

HOST_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?", re.IGNORECASE)
EXAMPLE = "127.0.0.1,localhost:8000,[::1]:8000"


def token_host_problem(entry: str) -> str | None:
    """Why `entry` is no BENCHMARK_TOKEN_HOSTS entry, or None."""
    try:
        token_host_parse(entry)
    except ValueError as exc:
        return str(exc)
    return None


def token_host_parse(entry: str) -> tuple[str, int | None]:
    """An entry as (canonical host, port or None: any port): a host name or IPv4 address with an optional
    `:port`, an IPv6 address, or `[IPv6]` with an optional `:port` (ports 1-65535). ValueError says why it is
    none. The one reading of the syntax: start-up checks with it and the runs' token check matches with it."""
    entry = entry.strip()
    host, port = entry, None
    if "/" in entry:
        raise ValueError("a host, not a URL: no scheme or path")
    if entry.startswith("["):
        found = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", entry)
        if not found:
            raise ValueError("a bracketed IPv6 address is [address] or [address]:port")
        host, port = found.group(1), found.group(2)
        if not _is_ipv6(host):
            raise ValueError(f"{host!r} is not an IPv6 address")
    elif entry.count(":") > 1:
        if not _is_ipv6(entry):
            raise ValueError("not an IPv6 address (with a port, write [address]:port)")
    elif ":" in entry:
        host, port = entry.split(":")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"the port {port!r} is not one from 1 to 65535")
    if ":" not in host and not (host.isascii() and HOST_NAME.fullmatch(host)):
        raise ValueError(f"{host!r} is not a host name or address")
    return canonical_host(host), int(port) if port is not None else None


def canonical_host(host: str) -> str:
    """`host` as BENCHMARK_TOKEN_HOSTS entries and URLs' hosts are compared: lower case, no brackets, no trailing
    dot, an IP address as ipaddress writes it. An accepted entry `api.svc.` or `0:0:0:0:0:0:0:1` matched no URL
    (`http://api.svc:8000`, `http://[::1]:8000`), so every run to it was refused its token."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.removesuffix(".")  # the root's dot: the same name
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
