"""Identifier rules needed before Django is set up (settings read MRN_SYSTEM with them): plain Python only."""

import re

# FHIR's Identifier.system: an absolute URI, a scheme then something (https://..., urn:oid:1.2.3).
URI_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
# The longest identifier system stored (Patient.identifier_system) and taken by the API.
MAX_SYSTEM_LENGTH = 255
