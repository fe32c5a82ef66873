"""Times every request by its route template (never the raw path, which can carry identifiers); static files
(WhiteNoise's) are not requests of the API, and are not counted."""

from __future__ import annotations

import time

from django.utils.functional import empty
from whitenoise.middleware import WhiteNoiseFileResponse

from apps.metrics.recorder import recorder

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _client_label(request) -> str:
    """The API client's name, "session" for a signed-in user, else "anonymous".

    The user is looked at only if the view already loaded it: labelling a request must not cost a
    session read it did not need.
    """
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "name", None):
        return auth.name
    user = request.__dict__.get("user")
    if user is not None and getattr(user, "_wrapped", empty) is not empty and user.is_authenticated:
        return "session"
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
