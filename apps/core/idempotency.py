"""`Idempotency-Key` on the API's creates: a client that retries a POST whose answer it lost (a timeout, a dropped
connection) gets the first answer again instead of a second patient or a second reading.

The key is claimed with a row under a unique (client, key) constraint, inserted in the create's own transaction
before the create: a twin sent at the same moment waits on that insert, and finds the first one's committed row
(its answer) or, had the first failed, the key free. Only a create that succeeded is kept (a refused request
rolls its claim back, so its retry is judged afresh); a replay renders the created resource anew from its id, so
no PHI is stored, and answers 410 where it has been deleted since. The same key with another request (method,
path or body) is a 422: a client bug that would otherwise be answered with the wrong resource.

The key itself is kept only as an HMAC (CACHE_KEY_SECRET, the cache keys' hasher) of the client and the key:
clients build keys from MRNs or names, and a plain SHA-256 of a guessable key is reversed by trying them."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request

from apps.caching.layers import KeyHasher
from apps.core.models import IdempotencyKey
from controlplane.db_router import reads_from_primary

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# How long a key answers with its first request's result; past it the key is free again.
KEY_TTL = timedelta(hours=24)
# Printable ASCII, as a header carries it; a UUID is the usual key.
KEY_PATTERN = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")
# Expired keys each claim deletes: the table stays about a day of keys without a scheduled task.
PURGE_BATCH = 100

T = TypeVar("T")


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was sent with another request; use a new key for a new request."
    default_code = "idempotency_key_reused"


class IdempotentResourceGone(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "What the first request with this Idempotency-Key created has been deleted since."
    default_code = "gone"


@dataclass(frozen=True)
class IdempotentRequest:
    """A request carrying a key: who sent it, the key's HMAC (`key_digest`, never the key as sent), and a SHA-256
    of what was asked (never the body)."""

    client: str
    key: str
    request_sha256: str


def idempotent_request(request: Request) -> IdempotentRequest | None:
    """The request's Idempotency-Key, or None without one; a malformed key is a 400 on the header."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not KEY_PATTERN.fullmatch(key):
        raise ValidationError({HEADER: ["1 to 255 printable ASCII characters (a UUID, say)."]})
    auth = request.auth
    client = f"client:{auth.pk}" if getattr(auth, "pk", None) is not None else f"user:{request.user.pk}"
    asked = json.dumps([request.method, request.path, request.data], sort_keys=True, separators=(",", ":"))
    return IdempotentRequest(
        client=client, key=key_digest(client, key), request_sha256=hashlib.sha256(asked.encode()).hexdigest()
    )


def key_digest(client: str, key: str) -> str:
    """What is stored of a client's key: 64 hex characters, an HMAC-SHA256 keyed like the cache's keys, so the key
    (often an MRN or a name) is neither stored nor recoverable from the table without the secret."""
    return _hasher(settings.CACHE_KEY_SECRET).digest("idempotency-key", client, key)


@functools.lru_cache(maxsize=2)
def _hasher(secret: str) -> KeyHasher:
    return KeyHasher(secret)


def idempotent_create(
    claim: IdempotentRequest | None,
    *,
    create: Callable[[], T],
    replay: Callable[[str], T],
    resource_id: Callable[[T], object],
    response_status: int = status.HTTP_201_CREATED,
) -> tuple[T, bool]:
    """Run `create` in a transaction, once per key: (its result, False); or, for a key already answered,
    (`replay(resource id)`, True). `create` writes (and audits) inside the transaction, with the claim; `replay`
    runs after it, reading on the primary, finds the resource again (IdempotentResourceGone where it is deleted
    since) and audits its disclosure. Without a key it is the create in a transaction."""
    with transaction.atomic():
        if claim is None:
            return create(), False
        _purge_expired(claim)
        claimed = _claim(claim, response_status)
        if claimed is not None:
            result = create()
            IdempotencyKey.objects.filter(pk=claimed).update(resource_id=str(resource_id(result)))
            return result, False
        kept = IdempotencyKey.objects.get(client=claim.client, key=claim.key)
    if kept.request_sha256 != claim.request_sha256:
        raise IdempotencyKeyReused()
    # On the primary, where the key was read: a replica that had not caught up with the create answered 410
    # "deleted since" for a resource that exists.
    with reads_from_primary():
        return replay(kept.resource_id), True


def _purge_expired(claim: IdempotentRequest) -> None:
    """The claimed key if expired (so it is free again), and a batch of other expired keys. On PostgreSQL, rows
    another claim is deleting are skipped, not waited for; SQLite (the embedded mode), which has no row locks
    and no SKIP LOCKED, deletes them plainly: its writers take turns anyway."""
    if connection.vendor != "postgresql":
        now = timezone.now()
        expired = IdempotencyKey.objects.filter(expires_at__lte=now)
        batch = list(expired.order_by("expires_at").values_list("pk", flat=True)[:PURGE_BATCH])
        expired.filter(Q(client=claim.client, key=claim.key) | Q(pk__in=batch)).delete()
        return
    table = IdempotencyKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE (client = %s AND key = %s AND expires_at <= statement_timestamp()) "  # noqa: S608
            f"OR id IN (SELECT id FROM {table} WHERE expires_at <= statement_timestamp() "
            f"ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            [claim.client, claim.key, PURGE_BATCH],
        )


def _claim(claim: IdempotentRequest, response_status: int) -> int | None:
    """Insert the key's row; its id, or None where the key is taken. A twin's uncommitted claim makes this wait
    until that transaction ends: committed, the key is taken; rolled back, this claim is inserted."""
    table = IdempotencyKey._meta.db_table
    if connection.vendor == "postgresql":
        # On the database's clock, which judges the expiry (_purge_expired): stamped by this host's, a host
        # behind the database kept keys less than a day, and one a day behind wrote them already expired.
        stamps, times = "statement_timestamp(), statement_timestamp() + %s", [KEY_TTL]
    else:  # SQLite (the embedded mode): one host, whose clock the purge reads too
        now = timezone.now()
        stamps, times = "%s, %s", [now, now + KEY_TTL]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (client, key, request_sha256, response_status, resource_id, created_at, "  # noqa: S608
            f"expires_at) VALUES (%s, %s, %s, %s, '', {stamps}) ON CONFLICT (client, key) DO NOTHING RETURNING id",
            [claim.client, claim.key, claim.request_sha256, response_status, *times],
        )
        row = cursor.fetchone()
    return row[0] if row else None
