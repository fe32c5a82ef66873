"""The DRF throttle on the exact limiter. Views opt in by naming a `throttle_scope`."""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.accounts.scopes import BENCHMARK
from apps.core.client_address import caller_network
from apps.core.local_cache import shared_cache_breaker
from apps.ratelimits.limiter import DatabaseSlidingWindow, Decision, LimiterUnavailable, RedisSlidingWindow
from apps.ratelimits.selectors import active_policy

logger = logging.getLogger(__name__)


class RateLimiterUnavailable(APIException):
    status_code = 503
    default_detail = "The rate limiter cannot be reached and this API is configured to fail closed. Retry shortly."
    default_code = "rate_limiter_unavailable"


class _Limiter:
    """This process's limiter: Redis when configured, else the database.

    Redis is the cache's own, so the limiter goes through the same breaker as every other caller of it:
    once anything in the process saw it hang, no request waits on it, and only a background thread
    probes it."""

    breaker = shared_cache_breaker

    def __init__(self):
        self._backend = None
        self._lock = threading.Lock()

    def backend(self):
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    if settings.REDIS_URL:
                        from django_redis import get_redis_connection

                        self._backend = RedisSlidingWindow(get_redis_connection("default"))
                    else:
                        self._backend = DatabaseSlidingWindow()
        return self._backend

    def hit(self, key: str, **limits) -> Decision:
        backend = self.backend()
        if not isinstance(backend, RedisSlidingWindow):
            return backend.hit(key, **limits)  # the database: a request that cannot reach it fails anyway
        if not self.breaker.available():
            raise LimiterUnavailable("circuit open")
        try:
            decision = backend.hit(key, **limits)
        except LimiterUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()
        return decision

    def period_edited(self, scope: str, period_seconds: int, *, lengthened: bool) -> None:
        """After an edit changed the scope's period (committed): lengthened, Redis keeps its logs for the new
        period (RedisSlidingWindow.lengthen); shortened, the keep floor a lengthening left goes
        (RedisSlidingWindow.shorten). The database's hits are kept until a hit of the key or the prune drops
        them, past any period. Redis away: logged, never the edit's failure (a log may then expire early or late)."""
        backend = self.backend()
        if not isinstance(backend, RedisSlidingWindow):
            return
        try:
            if not self.breaker.available():
                raise LimiterUnavailable("circuit open")
            try:
                if lengthened:
                    backend.lengthen(scope, period_seconds)
                else:
                    backend.shorten(scope)
            except LimiterUnavailable:
                self.breaker.failure()
                raise
        except LimiterUnavailable:
            logger.warning("rate limiter unreachable: the logs of scope %s were not set for its new period of %d s",
                           scope, period_seconds)  # fmt: skip


limiter = _Limiter()


def retry_after_seconds(breaker) -> int:
    """Retry-After of a fail-closed 503: the whole seconds left of the breaker's back-off (when it next lets a
    probe try Redis), at least 1. The whole back-off overstated it for every request after the first; and 0 (a
    back-off of 0, or one already past while its probe runs) made DRF leave the header out, so clients
    retried at once."""
    left = breaker.seconds_until_probe() if breaker.state == breaker.OPEN else breaker.open_seconds
    return max(1, math.ceil(left))


def client_identity(request: Request) -> str:
    """The token's client, else the signed-in user, else the peer's address: never anything from the URL or the
    body, nor a header the client writes (X-Forwarded-For would hand a new quota to each made-up value; behind
    TRUSTED_PROXIES, ClientAddressMiddleware has already put the caller's address in REMOTE_ADDR).
    Anonymous callers sharing one key would let one of them spend the quota of all."""
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "pk", None) is not None:
        return f"c{auth.pk}"
    if request.user and request.user.is_authenticated:
        return f"u{request.user.pk}"
    return f"ip{caller_network(request.META.get('REMOTE_ADDR', ''))}"


class PolicyRateThrottle(BaseThrottle):
    def __init__(self):
        self._wait: float | None = None

    def allow_request(self, request: Request, view) -> bool:
        scope = getattr(view, "throttle_scope", None)
        policy = active_policy(scope) if scope else None
        if policy is None or BENCHMARK in getattr(request.auth, "scopes", ()):
            return True  # a load test measures the service's capacity, not the limiter
        try:
            decision = limiter.hit(
                f"{scope}:{client_identity(request)}",
                limit=policy.requests,
                window_seconds=policy.period_seconds,
                burst=policy.burst_per_second,
            )
        except LimiterUnavailable as exc:
            if policy.fail_open:
                return True
            refused = RateLimiterUnavailable()
            refused.wait = retry_after_seconds(limiter.breaker)
            request._request.rate_limiter_refused = scope  # logged by the middleware, as a warning
            raise refused from exc
        request._request.rate_limit = decision  # the headers middleware reads it
        self._wait = decision.retry_after_seconds
        return decision.allowed

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait else None


class RefusalLog:
    """The fail-closed 503s, logged as one WARNING per `interval` per process with the number refused since the
    line before. Each is a refusal the policy asked for, not a server error: Django's ERROR `django.request` line
    per 503 (140 in 6 s from one client while Redis was down) flooded the error alerting. The refusals held back
    are logged when the interval ends (a timer) or the process exits, even when no refusal follows them: before,
    only the next refusal wrote them, so the last seconds of an outage never reached the log."""

    interval = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused = 0
        self._scope = ""
        self._logged_at: float | None = None
        self._timer: threading.Timer | None = None

    def refused(self, scope: str) -> None:
        """Count one refusal of `scope`'s requests. The line names the scope, never the path (which may carry a
        patient's id: Django's own line has it redacted to the route)."""
        with self._lock:
            self._refused += 1
            self._scope = scope
            now = time.monotonic()
            if self._logged_at is not None and now - self._logged_at < self.interval:
                if self._timer is None:  # held back: written when the interval ends, refused again or not
                    self._timer = threading.Timer(self.interval - (now - self._logged_at), self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
            count, self._refused, self._logged_at = self._refused, 0, now
            self._cancel_timer()
        self._log(count, scope)

    def flush(self) -> None:
        """Log the refusals held back, if any (the timer at the interval's end; atexit)."""
        with self._lock:
            self._cancel_timer()
            count, scope = self._refused, self._scope
            if not count:
                return
            self._refused, self._logged_at = 0, time.monotonic()
        self._log(count, scope)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()

    @staticmethod
    def _log(count: int, scope: str) -> None:
        logger.warning(
            "rate limiter unreachable: %d request(s) refused (503, fail-closed) since the last such line; latest "
            "scope %s",
            count,
            scope,
        )


refusal_log = RefusalLog()
atexit.register(refusal_log.flush)  # the timer is a daemon thread: a refusal held back at exit


class RateLimitHeadersMiddleware:
    """`RateLimit-Limit`, `-Remaining` and `-Reset` on every limited response, 429s included; a fail-closed 503
    logged as a warning (`RefusalLog`) in place of Django's ERROR line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        scope = getattr(request, "rate_limiter_refused", None)
        if scope is not None and response.status_code == RateLimiterUnavailable.status_code:
            refusal_log.refused(scope)
            response._has_been_logged = True  # django.request's log_response skips it
        decision: Decision | None = getattr(request, "rate_limit", None)
        if decision is not None:
            response["RateLimit-Limit"] = str(decision.limit)
            response["RateLimit-Remaining"] = str(max(decision.remaining, 0))
            response["RateLimit-Reset"] = str(math.ceil(decision.reset_seconds))
        return response
