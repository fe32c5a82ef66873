"""The failed-authentication budget: bearer-token failures counted per client address, in Redis.

DRF authenticates before its throttles run, so the rate limits never saw a request whose token was wrong: a
client sending made-up tokens got an endless stream of 401s, each a database lookup (past the 5 s negative
cache) and an audit record. Each failure is one hit on the exact limiter (apps/ratelimits/limiter.py) under
the address's key. The failure that spends the budget leaves a marker that lives until the window frees a
slot, and while it lives the address's requests with a token this process has not seen authenticate are
refused (429) before any lookup. A token known valid is never refused: a hospital's NAT puts many clients
behind one address, and one misconfigured client must not lock the others out.

Redis only, and never in the way: with none configured or reachable nothing is counted or refused (a 401
stays a 401), and through the shared cache's breaker no request waits on a hung Redis more than once per
back-off. Keys hold an HMAC of the address, never the address, a token or any part of one.
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
known_valid_tokens = NegativeCache(ttl=3600.0, max_entries=10_000)


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


def refuse_if_over_budget(address: str) -> None:
    """Raise TooManyFailedAuthentications while the address has spent its budget of failures."""
    left = _store.refused_for(_key(caller_network(address)))
    if left is not None:
        raise TooManyFailedAuthentications(wait=max(1, math.ceil(left)))


def record_failed_authentication(address: str) -> None:
    """Count one failed authentication from the address against its budget."""
    _store.count_failure(_key(caller_network(address)))
