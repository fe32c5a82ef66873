"""Every write to API clients goes through here: the command, the admin and tests alike."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.failure_budget import forget_valid_token
from apps.accounts.models import ApiClient
from apps.accounts.scopes import BENCHMARK, SCOPES
from apps.core.local_cache import NegativeCache, VersionedLocalCache
from apps.core.validators import unseen_characters

# Authenticating a request reads its client from here; every write below invalidates it, and other
# processes drop their copies within about a second (the shared version, re-read once a second). Entries
# live 5 s, not the default minute: that bounds the two cases the version does not reach, a revoke whose
# publication failed (Redis unreachable from the revoking process only, or a change made in SQL) and a
# load that read the client just before a revoke and stored it just after another thread saw the new
# version. One indexed query per token per process every 5 s is nothing next to the requests it serves.
API_CLIENT_CACHE_TTL_SECONDS = 5.0
api_clients_cache = VersionedLocalCache("api-clients", ttl=API_CLIENT_CACHE_TTL_SECONDS)
# Digests of bearer tokens that matched no client, remembered for a few seconds: a flood of made-up tokens
# (or one bad token retried in a loop) cost a query per request. A token is random and issued only by
# api_client_create/rotate, so a digest found unknown cannot become a client's.
unknown_tokens = NegativeCache(ttl=5.0, max_entries=10_000)

TOKEN_PREFIX = "cpk"  # noqa: S105 - a public marker that tells our tokens apart, not a secret

# Issued by the product's own runners to their short-lived tokens, never held by an application: the
# benchmark scope lifts every rate limit, fail-closed ones included.
RUNNER_ONLY_SCOPES = frozenset({BENCHMARK})


def token_hash(token: str) -> str:
    """Tokens carry 256 bits of entropy, so one SHA-256 is enough and keeps lookups to one index hit."""
    return hashlib.sha256(token.encode()).hexdigest()


def _forget_known_valid_on_commit(client: ApiClient) -> None:
    """The client's stored token is ending (revoked, rotated away, deleted): once that commits, no process is
    told it is known valid any more (the failure budget's shared key), so from an address over its budget it
    is refused before any lookup, as a token never seen; its stored hash is read, not the caller's instance's."""
    stored = ApiClient.objects.filter(pk=client.pk).values_list("token_hash", flat=True).first()
    if stored:
        transaction.on_commit(lambda: forget_valid_token(stored))


@dataclass(frozen=True)
class IssuedToken:
    client: ApiClient
    token: str = field(repr=False)  # never in a traceback's locals or a formatted log line


def _new_token() -> tuple[str, str]:
    public = secrets.token_hex(4)
    return f"{TOKEN_PREFIX}_{public}", f"{TOKEN_PREFIX}_{public}_{secrets.token_urlsafe(32)}"


def validate_scopes(scopes: list[str]) -> list[str]:
    if not isinstance(scopes, list | tuple) or not all(isinstance(scope, str) for scope in scopes):
        raise ValidationError(
            {"scopes": f'A list of scope names, e.g. ["patient:read"]. Known scopes: {", ".join(SCOPES)}.'}
        )
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}. Known scopes: {', '.join(SCOPES)}."})
    if not scopes:
        raise ValidationError({"scopes": "At least one scope is required."})
    return sorted(set(scopes))


def validate_application_scopes(scopes: list[str], *, before: Iterable[str] = ()) -> list[str]:
    """`validate_scopes`, refusing to add a runner-only scope to an application's client (`before`: the
    scopes it holds already, e.g. a benchmark run's own token being edited)."""
    cleaned = validate_scopes(scopes)
    added = sorted(RUNNER_ONLY_SCOPES.intersection(cleaned) - set(before))
    if added:
        raise ValidationError(
            {
                "scopes": f"{', '.join(added)}: issued only by the benchmark runner to its own short-lived tokens "
                "(it lifts every rate limit); an application must not hold it."
            }
        )
    return cleaned


# Ten years: a longer-lived token is a forgotten one, and near year 9999 a time in the hospital's zone is past
# year 10,000 in UTC (stored by PostgreSQL, unreadable by Python: every read of the client fails). The same
# bound the other way: near year 1 a time in a zone east of UTC is before year 1 in UTC, a BC timestamp that
# PostgreSQL keeps and psycopg cannot read; a past expiry only ends the token now, which any recent one does.
MAX_EXPIRES_DAYS = 3650


def validate_expires_at(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    now = timezone.now()
    if expires_at > now + timedelta(days=MAX_EXPIRES_DAYS):
        raise ValidationError(
            {"expires_at": f"A token expires within ten years ({MAX_EXPIRES_DAYS} days); leave it empty for never."}
        )
    if expires_at < now - timedelta(days=MAX_EXPIRES_DAYS):
        raise ValidationError(
            {"expires_at": "An expiry more than ten years ago: to end the token now, give today's date, or revoke it."}
        )
    return expires_at


# The names of the benchmark runner's own short-lived tokens (`benchmark-run-<run>-<attempt>`): the runner revokes
# every client so named when its run ends, and creates them under names that must be free.
RUNNER_CLIENT_NAME_PREFIX = "benchmark-run-"

_SPACES = re.compile(" {2,}")


def normalize_client_name(name: str) -> str:
    """The name as stored: NFKC (a full-width or compatibility form is its plain one), surrounding whitespace
    dropped, a run of spaces one space (a page shows them as one)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name).strip()) if isinstance(name, str) else name


def _name_taken(name: str) -> bool:
    # iexact is UPPER() = UPPER() on PostgreSQL: the fold of the database's constraint on the name.
    return ApiClient.objects.filter(name__iexact=name).exists()


def _name_taken_error(name: str) -> ValidationError:
    return ValidationError({"name": f"An API client named {name!r} (in some case) already exists."})


def validate_client_name(name: str) -> str:
    """`normalize_client_name`, refusing a blank name, one with a character nobody sees, one the request
    rollups give callers that are not clients (`user:<id>`, "anonymous", ...), and one that differs from an
    existing client's only in case."""
    if not isinstance(name, str):
        raise ValidationError({"name": "A name is text."})
    name = normalize_client_name(name)
    if not name:
        raise ValidationError({"name": "A name is required."})
    # A name shows in admin, the commands' output, logs and as the actor of audit records (apps/core/validators.py).
    unseen = unseen_characters(name)
    if unseen or any(c.isspace() and c != " " for c in name):
        shown = ", ".join(unseen) if unseen else "whitespace other than spaces"
        raise ValidationError({"name": f"A name holds only visible characters and spaces; not {shown}."})
    if name.casefold() in _RESERVED_CLIENT_NAMES or _USER_LABEL_NAME.fullmatch(name):
        raise ValidationError(
            {
                "name": f"{name!r} is reserved: the request rollups label signed-in users (user:<id>), the "
                "unauthenticated (anonymous) and callers the page cannot name by it, so a client so named "
                "would be counted and limited together with them; choose another."
            }
        )
    if _name_taken(name):
        raise _name_taken_error(name)
    return name


# The request rollups' and the Rate limits page's labels for callers that are not API clients
# (apps/ratelimits/selectors.py): a client named like one had its traffic merged with theirs.
_RESERVED_CLIENT_NAMES = frozenset({"anonymous", "session", "unrecognised client"})
_USER_LABEL_NAME = re.compile(r"user:[0-9]+", re.IGNORECASE)


def validate_application_name(name: str) -> str:
    """`validate_client_name`, refusing the benchmark runner's names to an application's client."""
    name = validate_client_name(name)
    if name.lower().startswith(RUNNER_CLIENT_NAME_PREFIX):
        raise ValidationError(
            {
                "name": f"Names starting {RUNNER_CLIENT_NAME_PREFIX!r} are the benchmark runner's own tokens' "
                "(it revokes them when its run ends); choose another."
            }
        )
    return name


@transaction.atomic
def api_client_create(
    *, name: str, scopes: list[str], expires_at: datetime | None = None, description: str = ""
) -> IssuedToken:
    """Create a client and issue its token; the token is returned once and never stored."""
    if isinstance(description, str) and "\x00" in description:
        raise ValidationError({"description": "A description cannot hold a NUL character."})
    prefix, token = _new_token()
    client = ApiClient(
        name=validate_client_name(name),
        description=description,
        scopes=validate_scopes(scopes),
        expires_at=validate_expires_at(expires_at),
        token_prefix=prefix,
        token_hash=token_hash(token),
    )
    # Not the constraints: the name's was checked above, as a message on the field, and the insert enforces it.
    client.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            client.save()
    except IntegrityError as taken:  # a create of the name, in some case, committed since the check above
        raise _name_taken_error(client.name) from taken
    return IssuedToken(client=client, token=token)


@transaction.atomic
def api_client_rotate(*, client: ApiClient, expires_at: datetime | None = None) -> IssuedToken:
    """Issue a new token for a client; the old one stops working at once."""
    _forget_known_valid_on_commit(client)
    prefix, token = _new_token()
    client.token_prefix = prefix
    client.token_hash = token_hash(token)
    client.rotated_at = timezone.now()
    changed = ["token_prefix", "token_hash", "rotated_at"]
    if expires_at is not None:  # otherwise left as stored: a stale instance must not write back an old expiry
        client.expires_at = validate_expires_at(expires_at)
        changed.append("expires_at")
    client.save(update_fields=changed)
    api_clients_cache.invalidate()
    return IssuedToken(client=client, token=token)


@dataclass(frozen=True)
class Revocation:
    """What `api_client_revoke` did. `revoked`: this call revoked the token; False when it was revoked already
    (by a revoke committed after the caller read the client, too) or the client was deleted, so the caller
    records and counts a revoke only when it made one."""

    client: ApiClient
    revoked: bool

    @property
    def revoked_at(self) -> datetime | None:
        """When the token was revoked, by this call or the first one."""
        return self.client.revoked_at


@transaction.atomic
def api_client_revoke(*, client: ApiClient) -> Revocation:
    """Revoke a client's token for good; its requests get 401 from then on. The first revocation's time is kept:
    one from an instance read before it (revoked_at still None there) changes nothing, and says so."""
    now = timezone.now()
    revoked = bool(ApiClient.objects.filter(pk=client.pk, revoked_at=None).update(revoked_at=now, is_active=False))
    if revoked:
        api_clients_cache.invalidate()
        _forget_known_valid_on_commit(client)
    stored = ApiClient.objects.filter(pk=client.pk).values("revoked_at", "is_active").first()
    if stored is not None:  # None: deleted meanwhile
        client.revoked_at, client.is_active = stored["revoked_at"], stored["is_active"]
    return Revocation(client=client, revoked=revoked)


@transaction.atomic
def api_client_delete(*, client: ApiClient) -> None:
    """Delete a client; every process drops its cached copy, so the token stops working at once."""
    _forget_known_valid_on_commit(client)
    client.delete()
    api_clients_cache.invalidate()


UPDATABLE_FIELDS = ("scopes", "is_active", "expires_at", "description")


@transaction.atomic
def api_client_update(*, client: ApiClient, **fields) -> ApiClient:
    """Change a client's scopes, activity, expiry (None: never) or description; every process sees
    the change within about a second.

    Only the named fields are written: a full save from an instance read before a revoke or a rotation
    (an admin form, a long-lived object) would write back `revoked_at=None` or the old token's hash, and
    bring a revoked or rotated-away token back to life."""
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"Not updatable on ApiClient: {', '.join(sorted(unknown))}")
    if "scopes" in fields:  # judged against what is stored: the instance may hold the new scopes already
        stored = ApiClient.objects.filter(pk=client.pk).values_list("scopes", flat=True).first()
        before = stored if isinstance(stored, list) else []
        fields["scopes"] = validate_application_scopes(fields["scopes"], before=before)
    if "expires_at" in fields:
        validate_expires_at(fields["expires_at"])
    if fields.get("is_active") and ApiClient.objects.filter(pk=client.pk, revoked_at__isnull=False).exists():
        raise ValidationError({"is_active": "This client's token is revoked for good; create a new client instead."})
    for name, value in fields.items():
        setattr(client, name, value)
    client.full_clean()
    if fields:
        client.save(update_fields=list(fields))
    api_clients_cache.invalidate()
    return client
