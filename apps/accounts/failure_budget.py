"""The failed-authentication budget: bearer-token failures counted per client address, in Redis.

DRF authenticates before its throttles run, so the rate limits never saw a request whose token was wrong: a
client sending made-up tokens got an endless stream of 401s, each a database lookup (past the 5 s negative
cache) and an audit record. Each failure is one hit on the exact limiter (apps/ratelimits/limiter.py) under
the address's key. The failure that spends the budget leaves a marker that lives until the window frees a
slot, and while it lives the address's requests with a token not known valid are refused (429) before any
lookup. A token known valid is never refused: a hospital's NAT puts many clients behind one address, and one
misconfigured client (or an attacker) must not lock the others out. For the same reason a revoked or expired
token of ours, presented whole, is not counted (authentication.STALE_TOKEN_CODES): it is no guess, and one
clinician's stale token retried behind the NAT spent the budget for the whole ward. Wrong, unknown, rotated-away
and malformed tokens count.

Known valid, two ways. In this process: `known_valid_tokens`, the token digests that authenticated here within
the hour, checked on every request at no cost. Across processes: a Redis key per token that authenticated in
any process (`auth-known-valid:<HMAC>`), so a worker just started (a deploy, a restart, one gunicorn worker of
several) does not refuse for the window a client its siblings know. The key is written once per token per
process per hour, when the process adds the token to its own set (after the commit that makes the client's row
true, never for a token of a transaction that rolls back), and lives twice that hour, so a token in use is
renewed before it is forgotten. It is read only when the address is refused and the token is not in the
process's set: the hot path costs what it did. What it grants is the database lookup, never the
authentication: the token is then checked as any other (revoked, rotated away, expired, deleted: refused,
counted as a failure, and deleted from the process's set and from Redis). The key's name is an HMAC of the
token's digest keyed with SECRET_KEY under its own salt: neither the token nor the digest stored in the
database (a plain SHA-256), and nothing that helps forge or find one.

Redis only, and never in the way: with none configured or reachable nothing is counted or refused (a 401
stays a 401), nothing is shared (each process knows what it saw), and through the shared cache's breaker no
request waits on a hung Redis more than once per back-off. Keys hold an HMAC of the address or of the token's
digest, never the address, a token or any part of one.
"""

from __future__ import annotations

import functools
import math
import threading

from django.conf import settings
from django.utils.crypto import salted_hmac
from rest_framework import exceptions, status

from apps.core.client_address import caller_network
from apps.core.local_cache import NegativeCache, shared_cache_breaker
from apps.ratelimits.limiter import RedisSlidingWindow

# Digests of tokens that authenticated in this process within the hour (a set with a TTL; the class is the
# negative cache's): they pass an address's refusal, whose budget a neighbour behind the same NAT spent.
# Revoked meanwhile, one is still refused by the authentication itself, and forgotten here.
KNOWN_VALID_SECONDS = 3600
known_valid_tokens = NegativeCache(ttl=float(KNOWN_VALID_SECONDS), max_entries=10_000)
# The Redis key of a token some process knows valid outlives a process's entry: the process re-learns the token
# through it (and renews it) while the address is refused.
SHARED_KNOWN_VALID_SECONDS = 2 * KNOWN_VALID_SECONDS


class TooManyFailedAuthentications(exceptions.AuthenticationFailed):
    """A 429 that is an authentication refusal: PHI views audit it as they audit a 401 (an anonymous, denied
    attempt), and DRF sends `wait` as Retry-After."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = (
        "Too many failed authentications from this address. Retry after the seconds Retry-After gives, with a "
        "valid token."
    )
    default_code = "too_many_failed_authentications"

    def __init__(self, wait: int) -> None:
        super().__init__()
        self.wait = wait


@functools.lru_cache(maxsize=4096)
def _key(network: str) -> str:
    # Keyed with SECRET_KEY: a plain hash of an IPv4 address is undone by hashing all four billion.
    return salted_hmac("apps.accounts.failure_budget", network, algorithm="sha256").hexdigest()[:32]


def _token_key(digest: str) -> str:
    # Of the token's digest, under a salt of its own: not the digest the database stores and looks the token up by.
    return salted_hmac("apps.accounts.failure_budget.known_valid", digest, algorithm="sha256").hexdigest()[:32]


class _Store:
    """The limiter and the refusal markers, on the shared cache's Redis and behind its breaker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window: RedisSlidingWindow | None = None

    def _client(self):
        if not settings.REDIS_URL or not shared_cache_breaker.available():
            return None
        from django_redis import get_redis_connection

        try:
            return get_redis_connection("default")
        except NotImplementedError:  # the default cache is not django-redis's: nothing to count in
            return None

    def _limiter(self, client) -> RedisSlidingWindow:
        window = self._window
        if window is None or window.client is not client:  # a new client: settings changed (tests)
            with self._lock:
                window = self._window = RedisSlidingWindow(client)
        return window

    def refused_for(self, key: str) -> float | None:
        """Seconds the address is still refused for; None when it is not, or when Redis cannot say."""
        client = self._client()
        if client is None:
            return None
        try:
            left_ms = client.pttl(f"auth-failures-refused:{key}")
        except Exception:  # noqa: BLE001 - fail open: no refusal without Redis
            shared_cache_breaker.failure()
            return None
        shared_cache_breaker.success()
        return left_ms / 1000 if left_ms and left_ms > 0 else None

    def known_valid(self, token_key: str) -> bool:
        """Whether some process marked the token known valid; False when Redis cannot say."""
        client = self._client()
        if client is None:
            return False
        try:
            found = client.exists(f"auth-known-valid:{token_key}")
        except Exception:  # noqa: BLE001 - this process's own set only
            shared_cache_breaker.failure()
            return False
        shared_cache_breaker.success()
        return bool(found)

    def mark_known_valid(self, token_key: str, valid: bool) -> None:
        client = self._client()
        if client is None:
            return
        try:
            if valid:
                client.set(f"auth-known-valid:{token_key}", 1, ex=SHARED_KNOWN_VALID_SECONDS)
            else:
                client.delete(f"auth-known-valid:{token_key}")
        except Exception:  # noqa: BLE001 - unshared, or left to its TTL: it only ever grants a lookup
            shared_cache_breaker.failure()
            return
        shared_cache_breaker.success()

    def count_failure(self, key: str) -> None:
        client = self._client()
        if client is None:
            return
        budget = settings.API_TOKEN_FAILURE_BUDGET
        try:
            decision = self._limiter(client).hit(
                f"auth-failures:{key}", limit=budget["failures"], window_seconds=budget["window_seconds"]
            )
            # Spent by this failure (none left) or by others racing it (refused): refused until a slot frees.
            if not decision.allowed or decision.remaining <= 0:
                wait = decision.retry_after_seconds if not decision.allowed else decision.reset_seconds
                client.set(f"auth-failures-refused:{key}", 1, px=max(1, math.ceil(wait * 1000)))
        except Exception:  # noqa: BLE001 - LimiterUnavailable, or the marker's write: fail open, uncounted
            shared_cache_breaker.failure()
            return
        shared_cache_breaker.success()


_store = _Store()


def refuse_if_over_budget(address: str, token_digest: str = "") -> bool:
    """Raise TooManyFailedAuthentications while the address has spent its budget of failures, unless another
    process knows the token (`token_digest`, the SHA-256 the client is looked up by) valid: then True, and the
    caller authenticates it as it would any token, and forgets it (`forget_valid_token`) if that fails."""
    left = _store.refused_for(_key(caller_network(address)))
    if left is None:
        return False
    if token_digest and _store.known_valid(_token_key(token_digest)):
        return True
    raise TooManyFailedAuthentications(wait=max(1, math.ceil(left)))


def remember_valid_token(digest: str) -> None:
    """The token authenticated, its client's row committed: known valid to this process for the hour, and to
    every process through Redis. Called once per token per process per hour, not per request."""
    known_valid_tokens.add(digest)
    _store.mark_known_valid(_token_key(digest), True)


def forget_valid_token(digest: str) -> None:
    """A token known valid failed to authenticate (revoked, rotated away, expired, deleted): no longer known."""
    known_valid_tokens.discard(digest)
    _store.mark_known_valid(_token_key(digest), False)


def record_failed_authentication(address: str) -> None:
    """Count one failed authentication from the address against its budget."""
    _store.count_failure(_key(caller_network(address)))
