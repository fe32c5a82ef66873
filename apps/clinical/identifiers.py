"""Identifier rules needed before Django is set up (settings read MRN_SYSTEM with them): plain Python only."""

import re
import string

# FHIR's Identifier.system: an absolute URI, a scheme then something (https://..., urn:oid:1.2.3).
URI_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
# The longest identifier system stored (Patient.identifier_system) and taken by the API.
MAX_SYSTEM_LENGTH = 255

# scheme ":" ["//" authority] path ["?" query] ["#" fragment]: the parts of a URI whose case means nothing
# (RFC 3986, 6.2.2.1) and the path, the one part whose trailing slashes are dropped.
_URI_PARTS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?://(?P<authority>[^/?#]*))?(?P<path>[^?#]*)(?P<tail>[?#].*)?", re.DOTALL
)
# A port that says nothing: the scheme's own (RFC 3986, 6.2.3).
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# A percent-encoded octet, and the characters whose encoding means nothing (RFC 3986, 2.3 and 6.2.2.2). None of
# them delimits a part of a URI, so decoding them never moves a boundary.
_PERCENT_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _percent_encoding(text: str) -> str:
    """`text` with its percent-encoded unreserved characters decoded (`%6D` is `m`, `%7E` is `~`) and the hex
    of every other encoded octet upper case (`%2f` is `%2F`): one spelling for what RFC 3986 says is one URI.
    A `%` not followed by two hex digits is kept as it is."""

    def one(match: re.Match) -> str:
        char = chr(int(match[1], 16))
        return char if char in _UNRESERVED else f"%{match[1].upper()}"

    return _PERCENT_ENCODED.sub(one, text)


def _host_and_port(authority: str, scheme: str) -> str:
    """The authority's host lower case and without a trailing dot (`example.org.` is the fully qualified
    `example.org`), its port left out where empty or the scheme's default. User information before an `@` is
    case-sensitive and kept as it is."""
    userinfo, at, hostport = authority.rpartition("@")
    # The port follows the last colon, outside an IP literal's brackets (`[::1]:8080`; `[::1]` has none).
    host, colon, port = hostport.rpartition(":")
    if not colon or (host.startswith("[") and not host.endswith("]")):
        host, port = hostport, ""
    host = _percent_encoding(host.lower())  # lower() also lowered the hex of what stays encoded
    if host.endswith(".") and host.strip("."):
        host = host[:-1]
    kept = f":{port}" if port and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{userinfo}{at}{host}{kept}"


def normalize_system(system: str) -> str:
    """An identifier system in the one spelling it is stored and looked up in: scheme and host lower case, a
    host's trailing dot and a default port (80 for http, 443 for https) dropped, a URN's namespace identifier
    lower case (`urn:OID:1.2` is `urn:oid:1.2`, RFC 8141), trailing slashes removed from the path (not from a query
    or fragment), the path's case kept (it may matter). `HTTP://Hospital.example.org:80/mrn/` and
    `http://hospital.example.org/mrn` name one system: compared as typed, one MRN could be registered once per
    spelling, and a lookup in another spelling missed the patient. Percent-encoding is normalised everywhere but
    in the scheme (RFC 3986, 6.2.2.2): an encoded unreserved character is decoded (`/%6Drn` is `/mrn`), any other
    encoded octet keeps its encoding with upper-case hex (`%2f` is `%2F`, and is no slash to strip). Anything that
    is not a URI comes back as it is, for validation to refuse."""
    match = _URI_PARTS.fullmatch(system) if isinstance(system, str) else None
    if match is None:
        return system
    scheme, authority, path, tail = match["scheme"].lower(), match["authority"], match["path"], match["tail"] or ""
    path, tail = _percent_encoding(path), _percent_encoding(tail)
    if authority is not None:
        # Decoded first: `%38%30` is the default port `80`, `example.org%2E` a trailing dot.
        authority = _host_and_port(_percent_encoding(authority), scheme)
    elif scheme == "urn":
        nid, colon, nss = path.partition(":")
        path = f"{_percent_encoding(nid.lower())}{colon}{nss}"
    # `http://x.org/` is `http://x.org`; a bare `urn:` keeps its last character rather than become empty.
    stripped = path.rstrip("/")
    if stripped or authority:
        path = stripped
    rest = f"{path}{tail}"
    return f"{scheme}:{rest}" if authority is None else f"{scheme}://{authority}{rest}"
