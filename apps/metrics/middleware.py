"""Times every request by its route template (never the raw path, which can carry identifiers); static files
(WhiteNoise's) are not requests of the API, and are not counted."""

from __future__ import annotations

import time

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils.functional import LazyObject
from whitenoise.middleware import WhiteNoiseFileResponse

from apps.metrics.recorder import recorder

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _client_label(request) -> str:
    """The API client's name, `user:<pk>` for a signed-in user, else "anonymous".

    Each user by their own label, as the rate limits count them (`client_identity`): one "session" label for every
    dashboard user made them one client on the Rate limits page, and a user DRF had authenticated (request.user
    replaced by the user itself, no lazy wrapper) was counted as "anonymous". The primary key only: never a
    username, which may be a clinician's name. The user is looked at only if something already loaded it:
    labelling a request must not cost a session read and a user query it did not need.
    """
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "name", None):
        return auth.name
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        user = user._wrapped  # `empty` while nothing has asked who the user is
    # A machine client's principal is no user (its name is the label above); AnonymousUser is none either.
    if isinstance(user, AbstractBaseUser) and user.is_authenticated and user.pk is not None:
        return f"user:{user.pk}"
    return "anonymous"


class RequestTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter_ns()
        response = self.get_response(request)
        if isinstance(response, WhiteNoiseFileResponse):
            # A static file (WhiteNoise's, a 304 as often as not), answered before any route: no API traffic. It was
            # counted as "<unmatched>": admin's files alone, ~1,164 requests a minute.
            return response
        match = getattr(request, "resolver_match", None)
        client = _client_label(request)
        route = (match.route if match else "<unmatched>")[:200]
        method = request.method[:8] if request.method in KNOWN_METHODS else "OTHER"
        elapsed_us = (time.perf_counter_ns() - started) // 1000
        status = response.status_code
        recorder.record(route=route, method=method, status=status, client=client[:120], elapsed_us=elapsed_us)
        return response
