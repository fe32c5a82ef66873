"""Request ids (every request carries one, echoed back and written into audit records) and the idle logoff of
staff sessions."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse

from apps.core.log_filters import correlation_id

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LAST_SEEN_KEY = "_last_seen"


class RequestIdMiddleware:
    """Keep a caller's X-Request-ID when it is well formed, otherwise mint one; log lines written while
    the request is handled carry it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = offered if _VALID_REQUEST_ID.match(offered) else uuid.uuid4().hex
        with correlation_id(request.request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


class SessionIdleTimeoutMiddleware:
    """Signs a session out after SESSION_IDLE_SECONDS without a request (HIPAA's automatic logoff,
    §164.312(a)(2)(iii)): a staff session left open on a ward workstation otherwise lasted the whole shift
    (SESSION_COOKIE_AGE). The last request's time is written at most once a minute; requests that carry no
    session (API tokens) cost nothing here."""

    WRITE_EVERY_SECONDS = 60

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        # session_key is the cookie's (no read); a session of nobody signed in is left alone, so a stale cookie
        # never makes one.
        if session is not None and session.session_key and settings.SESSION_IDLE_SECONDS and SESSION_KEY in session:
            now = time.time()
            last_seen = session.get(LAST_SEEN_KEY)
            if last_seen is not None and now - last_seen > settings.SESSION_IDLE_SECONDS:
                logout(request)  # the request goes on signed out: admin asks for a sign-in, the API says 403
            elif last_seen is None or now - last_seen >= self.WRITE_EVERY_SECONDS:
                session[LAST_SEEN_KEY] = now
        return self.get_response(request)


def stamp_session_on_sign_in(sender, request: HttpRequest | None, **kwargs) -> None:
    """A fresh session's last request is its sign-in: its first minute of requests then writes nothing."""
    session = getattr(request, "session", None)
    if session is not None:
        session[LAST_SEEN_KEY] = time.time()
