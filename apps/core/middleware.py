"""Request ids (every request carries one, echoed back and written into audit records) and the idle logoff of
staff sessions."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import get_resolver

from apps.core.log_filters import correlation_id

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept (in every audit record, which can never be deleted, and in the access log) only when it is
# a UUID, with its hyphens or as the 32 hex digits this middleware mints: a shape no bearer token of ours (its
# prefix and underscores) nor an MRN in use fits. Any other id (a token sent as the header by mistake, an MRN
# used as a correlation id) is replaced by a fresh one and kept nowhere.
_VALID_REQUEST_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{32}"
)
LAST_SEEN_KEY = "_last_seen"
# A view attribute: the view reads nothing of the session (the health probes), so no middleware loads it for it.
READS_NO_SESSION = "reads_no_session"


class RequestIdMiddleware:
    """Keep a caller's X-Request-ID when it is a UUID, otherwise mint one; log lines written while the request is
    handled carry it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        # Built once per handler, as a server starts (gunicorn's worker, uvicorn, runserver): the URLconf (every
        # view, admin and API module it imports) is loaded now, not by the first request, which waited for it
        # (a fresh server's first /healthz took 293-511 ms). A broken URLconf now stops start-up instead of failing
        # every request.
        get_resolver().url_patterns  # noqa: B018 - the cached property loads it

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = offered if _VALID_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        with correlation_id(request.request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


# The dashboard says how long its user has been idle (no pointer, key, wheel, scroll, touch or focus) on every
# API request it makes: its own polls of an unattended tab are then no activity. Whole seconds, capped (a day
# is as idle as any longer time; the cap keeps a huge number from reaching float arithmetic).
USER_IDLE_HEADER = "X-User-Idle-Seconds"
USER_IDLE_MAX_SECONDS = 24 * 3600
_USER_IDLE_VALUE = re.compile(r"[0-9]{1,12}")
# The last request's time is written at most this often, so it lags the user's last action by up to this much:
# a timeout shorter than twice it signed an active user out (see check_session_idle_seconds).
LAST_SEEN_WRITE_SECONDS = 60
SESSION_IDLE_MIN_SECONDS = 2 * LAST_SEEN_WRITE_SECONDS


def check_session_idle_seconds(value: object) -> None:
    """Refuse, at start-up, an idle timeout the once-a-minute write cannot keep: under 2 minutes (0 is off), a
    user whose requests came every 59 s was signed out, their last write being up to a minute old."""
    from django.core.exceptions import ImproperlyConfigured

    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImproperlyConfigured(
            f"SESSION_IDLE_SECONDS must be a whole number of seconds, 0 or more; it is {value!r}."
        )
    if 0 < value < SESSION_IDLE_MIN_SECONDS:
        raise ImproperlyConfigured(
            f"SESSION_IDLE_SECONDS={value} is under {SESSION_IDLE_MIN_SECONDS}: the last request is recorded once "
            f"a minute, so an active user would be signed out. Use 0 (off) or {SESSION_IDLE_MIN_SECONDS} or more."
        )


def user_active_at(request: HttpRequest, now: float) -> float | None:
    """When the request's user last acted: now for a request that says nothing (an admin page, a script), now
    less the dashboard's X-User-Idle-Seconds for one that says it, None (no activity) for a malformed value."""
    offered = request.headers.get(USER_IDLE_HEADER)
    if offered is None:
        return now
    if not _USER_IDLE_VALUE.fullmatch(offered):
        return None
    return now - min(int(offered), USER_IDLE_MAX_SECONDS)


def session_idle_expired(session, now: float | None = None) -> bool:
    """Whether a signed-in session's last activity is older than SESSION_IDLE_SECONDS (never when it is 0)."""
    last_seen = session.get(LAST_SEEN_KEY)
    if not settings.SESSION_IDLE_SECONDS or not isinstance(last_seen, int | float):
        return False
    return (time.time() if now is None else now) - last_seen > settings.SESSION_IDLE_SECONDS


class SessionIdleTimeoutMiddleware:
    """Signs a session out after SESSION_IDLE_SECONDS without its user's activity (HIPAA's automatic logoff,
    §164.312(a)(2)(iii)): a staff session left open on a ward workstation otherwise lasted the whole shift
    (SESSION_COOKIE_AGE). A request is activity at the time its user last acted: the dashboard's background
    polls of a tab nobody touches said "active" every 10 s and kept it signed in all shift. The time is written
    at most once a minute (so the logoff may come up to a minute early); requests that carry no session (API
    tokens) cost nothing here."""

    WRITE_EVERY_SECONDS = LAST_SEEN_WRITE_SECONDS

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> None:
        # Once the view is known: a probe (READS_NO_SESSION) never reads the session, a database query, so an
        # operator's browser signed in to admin got a 500 from /healthz and /readyz while the database was down.
        if getattr(view_func, READS_NO_SESSION, False):
            return None
        session = getattr(request, "session", None)
        # session_key is the cookie's (no read); a session of nobody signed in is left alone, so a stale cookie
        # never makes one.
        try:
            signed_in = bool(session is not None and session.session_key and settings.SESSION_IDLE_SECONDS
                             and SESSION_KEY in session)  # fmt: skip
        except (OperationalError, InterfaceError):
            # The session store (the database) is down: an API call (the dashboard's) gets the API's own 503 with
            # Retry-After, not a 500; elsewhere Django's error page, as before.
            unavailable = _database_unavailable(request)
            if unavailable is None:
                raise
            return unavailable
        if signed_in:
            now = time.time()
            last_seen = session.get(LAST_SEEN_KEY)
            active_at = user_active_at(request, now)
            if not isinstance(last_seen, int | float):
                last_seen = None
            # Expiry is judged before this request counts: a user back after the timeout is signed out, whatever
            # they did a moment ago (the server cannot tell that from having been there all along).
            if last_seen is not None and now - last_seen > settings.SESSION_IDLE_SECONDS:
                logout(request)  # the request goes on signed out: admin asks for a sign-in, the API says 401
            elif active_at is not None and (last_seen is None or active_at - last_seen >= self.WRITE_EVERY_SECONDS):
                session[LAST_SEEN_KEY] = active_at  # never later than now: the header only makes it less
        return None


def _database_unavailable(request: HttpRequest) -> HttpResponse | None:
    """What the API answers when the database is unavailable, in the format of the API under the path; None
    outside the APIs."""
    from apps.core.api.exceptions import DATABASE_RETRY_AFTER, DatabaseUnavailable
    from apps.core.errors import api_error

    response = api_error(request, 503, str(DatabaseUnavailable.default_detail), DatabaseUnavailable.default_code)
    if response is not None:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def stamp_session_on_sign_in(sender, request: HttpRequest | None, **kwargs) -> None:
    """A fresh session's last request is its sign-in: its first minute of requests then writes nothing."""
    session = getattr(request, "session", None)
    if session is not None:
        session[LAST_SEEN_KEY] = time.time()
