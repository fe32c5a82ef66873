"""Identifier rules needed before Django is set up (settings read MRN_SYSTEM with them): plain Python only."""

import re

# FHIR's Identifier.system: an absolute URI, a scheme then something (https://..., urn:oid:1.2.3).
URI_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
# The longest identifier system stored (Patient.identifier_system) and taken by the API.
MAX_SYSTEM_LENGTH = 255

# scheme ":" ["//" authority] rest: the parts of a URI whose case means nothing (RFC 3986, 6.2.2.1).
_URI_PARTS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?://(?P<authority>[^/?#]*))?(?P<rest>.*)", re.DOTALL)


def normalize_system(system: str) -> str:
    """An identifier system in the one spelling it is stored and looked up in: scheme and host lower case,
    trailing slashes removed, the path's case kept (it may matter). `HTTP://Hospital.example.org/mrn/` and
    `http://hospital.example.org/mrn` name one system: compared as typed, one MRN could be registered three
    times, once per spelling, and a lookup in another spelling missed the patient. Anything that is not a URI
    comes back as it is, for validation to refuse."""
    match = _URI_PARTS.fullmatch(system) if isinstance(system, str) else None
    if match is None:
        return system
    scheme, authority, rest = match["scheme"].lower(), match["authority"], match["rest"]
    if authority is not None:
        # The host only: user information before an `@` is case-sensitive.
        userinfo, at, host = authority.rpartition("@")
        authority = f"{userinfo}{at}{host.lower()}"
    # `http://x.org/` is `http://x.org`; a bare `urn:` keeps its last character rather than become empty.
    stripped = rest.rstrip("/")
    if stripped or authority:
        rest = stripped
    return f"{scheme}:{rest}" if authority is None else f"{scheme}://{authority}{rest}"
