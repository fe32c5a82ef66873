"""The brief's cache namespaces and their medical TTLs, seeded as CachePolicy rows."""

import re

_NAMESPACE = re.compile(r"[-a-zA-Z0-9_]{1,64}")  # what the policy's SlugField takes

DEFAULT_POLICIES: dict[str, dict] = {
    "patient_data": {"ttl_seconds": 30 * 60, "description": "Demographics and identifier lookups"},
    "clinical_data": {"ttl_seconds": 15 * 60, "description": "Encounters and observation queries"},
    "ai_inference": {"ttl_seconds": 60 * 60, "description": "Model outputs for identical inputs"},
    "audit_logs": {"ttl_seconds": 2 * 60 * 60, "description": "Audit trail queries"},
    "vital_signs": {"ttl_seconds": 10 * 60, "description": "Latest and recent vital signs"},
    "medications": {"ttl_seconds": 20 * 60, "description": "Medication requests"},
}

# The code stores patient data in every one of the brief's namespaces: an admin cannot mark them PHI-free,
# and their L2/L3 values are encrypted whatever a row says.
PHI_NAMESPACES: frozenset[str] = frozenset(DEFAULT_POLICIES)

# The longest TTL the optimizer may recommend per namespace (twice the brief's TTL): its clinical
# freshness limit. Admins edit it per policy; an empty limit means the optimizer never raises the TTL.
FRESHNESS_LIMITS: dict[str, int] = {namespace: 2 * spec["ttl_seconds"] for namespace, spec in DEFAULT_POLICIES.items()}


def namespace_check(namespace: object) -> None:
    """Refuse a namespace no policy can be named by, where the code names it: found later, by the policy's
    creation on the first read, it was a ValidationError (a 500) that said nothing of the cause."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"a cache namespace is 1-64 letters, digits, _ or - (got {namespace!r})")


def ttl_check(ttl: object) -> None:
    """Refuse a caller's `ttl=` that is not a whole number of seconds from 1 to a day (the longest any policy
    keeps an entry); None is the policy's own. Unchecked, 0 silently meant the policy's TTL, a negative one
    stored entries already expired (every read a load), a float ran as given, and text failed inside the
    write, after the load had run."""
    from apps.caching.models import MAX_TTL_SECONDS

    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl is a whole number of seconds from 1 to {MAX_TTL_SECONDS} (got {ttl!r})")
