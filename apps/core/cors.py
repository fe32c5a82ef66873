"""CORS_ALLOWED_ORIGINS, checked at start-up (plain Python, no Django: settings import it).

django-cors-headers compares an Origin with each listed entry by scheme and host:port exactly as the browser sends
it, so an entry written any other way (a path, a trailing slash, capitals, the scheme's own port, an international
name not in its xn-- form) would match no request: the clinicians' app would fail in the browser, with no word on
the server. `*` and `null` are refused: the APIs answer PHI to a bearer token, so every page allowed to read them
is named (`null` is any sandboxed frame or local file).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

EXAMPLE = "https://ehr.hospital.example"
# Plain HTTP only from the machine itself (a developer's app on localhost): a page served over HTTP from anywhere
# else can be rewritten on the way and would hold the token.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_problem(origin: str) -> str | None:
    """Why `origin` cannot be a CORS_ALLOWED_ORIGINS entry, or None when it is an exact origin a browser sends."""
    if origin in ("*", "null"):
        return f"{origin!r} would let any page read patient data; name each origin (e.g. {EXAMPLE})"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return f"{origin!r} is not an origin (e.g. {EXAMPLE})"
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return f"{origin!r} is not an origin: scheme://host[:port], e.g. {EXAMPLE}"
    if parts.path or parts.query or parts.fragment or "?" in origin or "#" in origin:
        return f"{origin!r} has a path; an origin is scheme://host[:port] alone, e.g. {EXAMPLE}"
    if parts.username is not None or parts.password is not None:
        return f"{origin!r} carries a user name or password; an origin is scheme://host[:port] alone"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"{origin!r} is plain HTTP; only https:// origins (or http://localhost) may read patient data"
    if not origin.isascii():
        return f"{origin!r} has a name browsers send in its ASCII (punycode, xn--) form; write that form"
    if "%" in parts.netloc:
        decoded = canonical_origin(parts.scheme, unquote(host).lower(), port)
        return f"{origin!r} has a percent-escape in its host, which browsers never send; write {decoded!r}"
    if port is not None and not 1 <= port <= 65535:
        return f"{origin!r} is not an origin: its port must be 1-65535"
    # The middleware compares the Origin header's text, so the entry must be the one spelling a browser sends.
    canonical = canonical_origin(parts.scheme, host, port)
    if origin == canonical:
        return None
    if port == DEFAULT_PORTS[parts.scheme]:
        return f"{origin!r} names the scheme's own port, which browsers leave out; write {canonical!r}"
    if origin != origin.lower():
        return f"{origin!r} has capitals, which browsers never send; write {canonical!r}"
    return f"{origin!r} is not spelled as browsers send it (a lone ':' or a port's leading zeros); write {canonical!r}"


def canonical_origin(scheme: str, host: str, port: int | None) -> str:
    """The one spelling of an origin a browser sends: no default or empty port, no leading zeros."""
    shown_port = "" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown_port}"
