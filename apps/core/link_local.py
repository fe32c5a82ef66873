"""Link-local and cloud metadata addresses refused as a place the product sends its own requests.

The cloud metadata service answers at 169.254.169.254 (and AWS's at fd00:ec2::254, which is no link-local
address): a service's base URL, an alert's webhook or the Prometheus history source there had the product
fetch the host's credentials on a staff member's say. Loopback and private addresses stay allowed: hospitals
run their services on private networks, and the demo's services answer on 127.0.0.1.

Two checks. The URL text (is_link_local_url, the validators): every spelling the resolver turns into such an
address (2852039166, 0xa9.254.169.254, 0251.0376.0251.0376, ::ffff:a9fe:a9fe, a trailing dot) and the
metadata service's names. And the address actually connected to (guarded_create_connection, the
connections and opener below): a name resolved at send time (DNS rebinding: a name that pointed elsewhere
when it was saved) and every redirect hop go through it."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

LINK_LOCAL_MESSAGE = (
    "Not a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254, "
    "metadata.google.internal), however written: the cloud metadata service answers there. "
    "Use the host's own name or address; localhost and private addresses are fine."
)

_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")
# Metadata services outside the link-local ranges: AWS's IPv6 one (Nitro), and Alibaba Cloud's.
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
# IPv6 forms that carry an IPv4 address in their last 32 bits, which a translator or the kernel reaches:
# IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks), IPv4-mapped, IPv4-translated
# (SIIT), and NAT64's well-known and local-use prefixes.
_EMBEDDING_V4_LOW_BITS = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
# The metadata service's names (GCP's, and EC2's old one), which resolve to it inside the cloud.
METADATA_HOST_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
# Dots IDNA treats as a label separator: the resolver reads "169。254。169。254" as 169.254.169.254.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling the C library's inet_aton (and so getaddrinfo) accepts: one to four
    parts, each decimal, octal (a leading 0) or hexadecimal (0x), the last filling the bytes left
    ("169.254.43518", "2852039166"). Parsed here, not by socket.inet_aton, whose leniency varies by libc."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        lower = part.lower()
        if lower.startswith("0x"):
            digits, base, allowed = lower[2:], 16, "0123456789abcdef"
        elif len(part) > 1 and part.startswith("0"):
            digits, base, allowed = part[1:], 8, "01234567"
        else:
            digits, base, allowed = part, 10, "0123456789"
        if not part or any(character not in allowed for character in digits):
            return None
        values.append(int(digits, base) if digits else 0)
    *head, last = values
    if any(value > 255 for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for position, value in enumerate(head):
        number += value << (8 * (3 - position))
    return ipaddress.IPv4Address(number)


def _normalized_host(host: str) -> str:
    """The host as the resolver reads it: compatibility forms folded (fullwidth digits, as IDNA's nameprep
    does), IDNA's other dots as dots, lower case, no brackets, no IPv6 zone, no trailing dots."""
    host = unicodedata.normalize("NFKC", host).translate(_DOTS).strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.split("%", 1)[0].rstrip(".")


def _parsed_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _inet_aton(host) if host and ":" not in host else None


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one carries: in its last 32 bits (above), in 6to4's prefix, and Teredo's
    server and (de-obfuscated) client."""
    embedded = []
    if any(address in network for network in _EMBEDDING_V4_LOW_BITS):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    return embedded


def _refused_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address in _METADATA_ADDRESSES:
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return address in _LINK_LOCAL_V4
    return address in _LINK_LOCAL_V6 or any(_refused_ip(inner) for inner in _embedded_v4(address))


def is_refused_address(address: str) -> bool:
    """Whether the product must not send a request to `address`: a link-local or cloud metadata address,
    however written (any IPv4 spelling inet_aton takes, IPv6 with a zone or brackets, an IPv6 form carrying
    such an IPv4 address), or one of the metadata service's names. Any other name is False: it is checked
    where it is resolved (guarded_create_connection)."""
    host = _normalized_host(str(address))
    if host in METADATA_HOST_NAMES:
        return True
    parsed = _parsed_address(host)
    return parsed is not None and _refused_ip(parsed)


def is_link_local_url(url: str) -> bool:
    """Whether `url`'s host is a refused address or name (is_refused_address); False for a URL without a
    host or one urlsplit cannot read."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return bool(host) and is_refused_address(host)


def refuse_link_local_url(value: str) -> None:
    """A model or form field validator: a URL whose host is a refused address is a field error."""
    if value and is_link_local_url(value):
        raise ValidationError(LINK_LOCAL_MESSAGE, code="link_local")


class RefusedAddressError(OSError):
    """A request the guard did not send: its host is, or resolves only to, a refused address. An OSError,
    as a host that does not answer is, so callers that report a failed connection report this one; urllib
    wraps it in a URLError (refusal_in finds it there)."""

    def __init__(self, message: str, *, host: str = "", addresses: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.host, self.addresses = host, addresses

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


def _refusal(host: str, addresses: list[str] | None = None, *, detail: str = "") -> RefusedAddressError:
    resolved = f" (it resolves to {', '.join(addresses)})" if addresses else ""
    message = (
        f"Refused to connect to {host}{resolved}: a link-local or cloud metadata address, where the cloud "
        f"metadata service answers.{f' {detail}' if detail else ''}"
    )
    return RefusedAddressError(message, host=host, addresses=tuple(addresses or ()))


def refusal_in(exc: BaseException) -> RefusedAddressError | None:
    """The RefusedAddressError `exc` is or wraps (urllib's URLError keeps it as its reason), else None."""
    for candidate in (exc, getattr(exc, "reason", None), exc.__cause__, exc.__context__):
        if isinstance(candidate, RefusedAddressError):
            return candidate
    return None


def guarded_create_connection(
    address: tuple[str, int],
    timeout: float | object | None = socket._GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """socket.create_connection, connecting only to addresses that are not refused: the host is resolved
    once and the address checked is the one connected to, so a name that now resolves to the metadata
    service (DNS rebinding, or a name changed after it was saved) is caught. A name resolving to refused and
    other addresses gets the others; one resolving to refused ones only raises RefusedAddressError."""
    host, port = address
    if is_refused_address(host):
        raise _refusal(host)
    refused: list[str] = []
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        if is_refused_address(sockaddr[0]):
            refused.append(sockaddr[0])
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    if refused:
        raise _refusal(
            host, list(dict.fromkeys(refused)), detail=f"Its other addresses failed: {error}" if error else ""
        )
    raise error or OSError(f"{host} resolves to no address")


class GuardedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose socket comes from guarded_create_connection."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_create_connection


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPSConnection whose socket comes from guarded_create_connection (TLS is then set up over it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guarded_create_connection


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        options = {"context": self._context}
        if hasattr(self, "_check_hostname"):  # Python 3.11's HTTPSHandler; gone in 3.12
            options["check_hostname"] = self._check_hostname
        return self.do_open(GuardedHTTPSConnection, req, **options)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, _normalized_host(parts.hostname or ""), parts.port or {"http": 80, "https": 443}.get(scheme)


# Headers that carry credentials: sent to the URL's own origin only.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Redirects followed to http(s) URLs only (urllib also took ftp://, which no guard covers), each hop's
    URL text checked here and its address at connect; credentials kept only when the hop stays on the
    origin (scheme, host and port) of the request that was redirected: urllib copied every header but the
    body's, so Prometheus' Authorization went wherever its answer pointed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(
                newurl, code, f"{msg} (a redirect to a non-HTTP URL, not followed)", headers, fp
            )
        if is_link_local_url(newurl):
            fp.close()  # the 3xx's answer, which urllib closes only on a redirect it follows
            raise _refusal(
                urllib.parse.urlsplit(newurl).hostname or newurl, detail=f"(The target of a {code} redirect.)"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in CREDENTIAL_HEADERS:
                    del new.headers[name]
        return new


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError for the 3xx


def guarded_opener(*, follow_redirects: bool = True) -> urllib.request.OpenerDirector:
    """A urllib opener for URLs a staff member chose: http and https only, every connection (each redirect
    hop's included) through guarded_create_connection. No proxy from the environment: a proxy resolves
    the name itself, and the guard would check only the proxy's address. Without `follow_redirects` a 3xx
    is an HTTPError, the answer."""
    opener = urllib.request.OpenerDirector()
    handlers = [
        urllib.request.UnknownHandler(),  # ftp:, file:, data: are "unknown url type" errors
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _GuardedHTTPHandler(),
        _GuardedHTTPSHandler(),
        GuardedRedirectHandler() if follow_redirects else _NoRedirectHandler(),
    ]
    for handler in handlers:
        opener.add_handler(handler)
    return opener
