"""Times every request by its route template (never the raw path, which can carry identifiers)."""

from __future__ import annotations

import time

from apps.metrics.recorder import recorder


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
        recorder.record(
            route=(match.route if match else "<unmatched>")[:200],
            method=request.method[:8],
            status=response.status_code,
            client=client[:120],
            elapsed_us=(time.perf_counter_ns() - started) // 1000,
        )
        return response
