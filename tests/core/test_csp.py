"""Our CSP middleware builds its default headers once: every response must still carry exactly what
django-csp's own middleware would give it."""

from __future__ import annotations

import pytest
from csp.constants import NONCE
from csp.decorators import csp_exempt, csp_replace, csp_update
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory

from apps.core.csp import CSPMiddleware

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")
REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"], "report-uri": "/csp-report/"}, "EXCLUDE_URL_PREFIXES": ["/x/"]}


def _plain(request):
    return JsonResponse({"ok": True})


@csp_update({"img-src": "https://images.example.org"})
def _updated(request):
    return HttpResponse("<p>")


@csp_replace({"script-src": "'self' https://cdn.example.org"})
def _replaced(request):
    return HttpResponse("<p>")


@csp_exempt()
def _exempt(request):
    return HttpResponse("<p>")


def _with_nonce(request):
    return HttpResponse(f"<script nonce='{request.csp_nonce}'></script>")


def _headers(middleware_class, view, path: str, *, status: int = 200) -> tuple[dict, object]:
    request = RequestFactory().get(path)

    def respond(request):
        response = view(request)
        response.status_code = status
        return response

    response = middleware_class(respond)(request)
    return {name: response.get(name) for name in HEADERS}, request


CASES = [(view, path) for view in (_plain, _updated, _replaced, _exempt, _with_nonce) for path in ("/api/v1/x", "/x/y")]


@pytest.mark.parametrize(("view", "path"), CASES)
@pytest.mark.parametrize("report_only", [None, REPORT_ONLY])
def test_every_response_gets_the_headers_django_csp_gives_it(settings, view, path, report_only):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = report_only
    ours, _ = _headers(CSPMiddleware, view, path)
    theirs, _ = _headers(DjangoCSPMiddleware, view, path)
    if view is _with_nonce:  # a fresh nonce per request: compare the policy around it
        ours = {name: value and value.split("'nonce-")[0] for name, value in ours.items()}
        theirs = {name: value and value.split("'nonce-")[0] for name, value in theirs.items()}
    assert ours == theirs
    assert ours["Content-Security-Policy"] or view is _exempt
    assert bool(ours["Content-Security-Policy-Report-Only"]) == bool(report_only and path != "/x/y")


def test_a_settings_change_reaches_the_next_response(settings):
    before, _ = _headers(CSPMiddleware, _plain, "/api/v1/x")
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"], "script-src": ["'self'", NONCE]}}
    after, _ = _headers(CSPMiddleware, _plain, "/api/v1/x")
    assert "script-src 'self'" in before["Content-Security-Policy"] and "img-src" in before["Content-Security-Policy"]
    assert after == _headers(DjangoCSPMiddleware, _plain, "/api/v1/x")[0]
    assert "img-src" not in after["Content-Security-Policy"] and "nonce" not in after["Content-Security-Policy"]
    nonced, _ = _headers(CSPMiddleware, _with_nonce, "/api/v1/x")
    assert "'nonce-" in nonced["Content-Security-Policy"]


def test_debug_error_pages_carry_no_policy_as_with_django_csp(settings):
    settings.DEBUG = True
    ours, _ = _headers(CSPMiddleware, _plain, "/api/v1/x", status=404)
    assert ours == dict.fromkeys(HEADERS)


def test_a_nonce_asked_for_after_the_header_is_written_is_an_error():
    _, request = _headers(CSPMiddleware, _plain, "/api/v1/x")
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)
