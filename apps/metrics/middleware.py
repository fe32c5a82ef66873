"""Times every request by its route template (never the raw path, which can carry identifiers)."""

from __future__ import annotations

import time

from apps.metrics.prometheus import REQUEST_SECONDS
from apps.metrics.recorder import recorder

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter_ns()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        auth = getattr(request, "auth", None)
        if auth is not None and getattr(auth, "name", None):
            client = auth.name
        elif getattr(request, "user", None) is not None and request.user.is_authenticated:
            client = "session"
        else:
            client = "anonymous"
        route = (match.route if match else "<unmatched>")[:200]
        method = request.method[:8] if request.method in KNOWN_METHODS else "OTHER"
        elapsed_us = (time.perf_counter_ns() - started) // 1000
        status = response.status_code
        recorder.record(route=route, method=method, status=status, client=client[:120], elapsed_us=elapsed_us)
        REQUEST_SECONDS.labels(route, method, f"{status // 100}xx").observe(elapsed_us / 1e6)
        return response
