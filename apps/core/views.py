"""Health endpoints and the dashboard shell. Plain Django views: no auth, no DRF on probes."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from apps.core.middleware import READS_NO_SESSION
from apps.core.selectors import ERROR, readiness_report, shared_readiness


def probe(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """GET and HEAD only, a write answered 405 in JSON. Exempt from CSRF, which otherwise ran first and answered
    a POST with its HTML 403 page (and a warning in the log): these views change nothing, so there is nothing
    for CSRF to protect."""

    @wraps(view)
    def safe_only(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                {"detail": f"Method {request.method} not allowed: GET or HEAD.", "code": "method_not_allowed"},
                status=405,
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)

    exempt = csrf_exempt(never_cache(safe_only))
    setattr(exempt, READS_NO_SESSION, True)  # answers while the database (the session store) is down
    return exempt


@probe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency, so an outage never restarts pods."""
    return JsonResponse({"status": "ok"})


@probe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: every dependency with its status and latency; 503 when a required one is down. The details
    (a failed check's error, which names hosts and ports, the pool's figures, the worker's pod name) go only to
    callers who may read /metrics: the probe is unauthenticated, and the ingress serves it to anyone. Other
    callers share one report a second (SharedReadiness), so a flood of them runs the checks once a second."""
    from apps.metrics.views import may_read_metrics

    if may_read_metrics(request):
        overall, checks = readiness_report()
    else:
        overall, checks = shared_readiness.report()
        checks = {name: {k: v for k, v in check.items() if k != "detail"} for name, check in checks.items()}
    return JsonResponse({"status": overall, "checks": checks}, status=503 if overall == ERROR else 200)


FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0a58ca"/>'
    '<path d="M3 9h2l1.5-4 3 7L11 8h2" fill="none" stroke="#fff" stroke-width="1.5"/></svg>'
)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page, admin included: answer it rather than log a 404."""
    response = HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@never_cache
@staff_member_required
def dashboard(request: HttpRequest, subpath: str = "") -> HttpResponse:
    """Serve the built single-page dashboard, telling it where the live websocket is and what the live
    feed says now."""
    index = settings.DASHBOARD_BUILD_DIR / "index.html"
    if not index.is_file():
        return render(request, "core/dashboard_missing.html", status=503)
    from apps.core.json_safe import strict_json
    from apps.metrics.consumers import live_feed_access
    from apps.metrics.selectors import live_snapshot

    may_watch, audience = live_feed_access(request.user)
    config = {
        "websocketUrl": settings.LIVE_WEBSOCKET_URL,
        "livePort": settings.LIVE_PORT,
        "adminUrl": "/admin/",
        "username": request.user.get_username(),
        "sessionIdleSeconds": settings.SESSION_IDLE_SECONDS,
        # The first frame shows real numbers at once, and the socket's first snapshot moves nothing.
        "snapshot": live_snapshot(visible_services=audience) if may_watch else None,
    }
    # JSON inside a <script> tag: escape "<" so no value can close the tag. Strict: one NaN in the snapshot
    # made the browser refuse the whole config, the websocket's address with it.
    config_script = (
        '<script id="controlplane-config" type="application/json">'
        + strict_json(config).replace("<", "\\u003c")
        + "</script>"
    )
    html = index.read_text(encoding="utf-8").replace("</head>", f"{config_script}</head>", 1)
    from apps.core.csp import allow_live_feed

    return allow_live_feed(request, HttpResponse(html))


def stored_report(run) -> HttpResponse:
    """A run's stored HTML report; a 404 that says why while the run has none (pending, running, failed)."""
    if not run.report_html:
        return HttpResponse(f"This run has no report yet (it is {run.status}).", status=404, content_type="text/plain")
    return HttpResponse(run.report_html)
