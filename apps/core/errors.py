"""Errors that happen outside any API view (an unknown path, a request Django cannot read, a URL with a
NUL in it), answered in the format the caller speaks: JSON under /api/, an OperationOutcome under /fhir/,
Django's own pages everywhere else."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware
from django.urls import is_valid_path
from django.views import defaults

from apps.core.chunked import too_large_detail


def error_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, cut to `limit` characters: enough for a log line or a report
    entry, without a driver's multi-line detail (a query, a hint) or a traceback in it."""
    return (str(error).strip().splitlines() or [""])[0][:limit]


def api_error(request: HttpRequest, status: int, detail: str, code: str) -> HttpResponse | None:
    """The error as the API under this path writes its own; None outside the APIs."""
    path = request.path_info
    if path.startswith("/fhir/"):
        from apps.clinical.fhir.resources import operation_outcome

        return JsonResponse(operation_outcome(status, detail), status=status, content_type="application/fhir+json")
    if path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # read outside an API view: the API views' 413 (api.exceptions)
        response = api_error(request, 413, too_large_detail(), "request_too_large")
        if response is not None:
            return response
    # Only the limits' own messages are repeated: other SuspiciousOperations may echo what the caller sent.
    readable = isinstance(exception, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent)
    detail = str(exception) if readable else "The request could not be read."
    return api_error(request, 400, detail, "bad_request") or defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    detail = "No such endpoint."
    if not request.path_info.endswith("/") and is_valid_path(f"{request.path_info}/"):
        detail += f" Did you mean {request.path_info}/ (with the trailing slash)?"
    return api_error(request, 404, detail, "not_found") or defaults.page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return api_error(request, 403, "Not allowed.", "permission_denied") or defaults.permission_denied(
        request, exception
    )


def server_error(request: HttpRequest) -> HttpResponse:
    detail = "Internal error; it has been logged with this request's X-Request-ID."
    return api_error(request, 500, detail, "server_error") or defaults.server_error(request)


class RejectNulMiddleware:
    """A NUL character is valid in no URL of this product, and PostgreSQL refuses it in text: a 400 here,
    before any view or query sees it (%00 in a path or a query string)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            detail = "The URL contains a NUL character (%00)."
            return api_error(request, 400, detail, "invalid") or HttpResponse(
                detail, status=400, content_type="text/plain"
            )
        return self.get_response(request)


class APICommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, except that a write to an API path without its trailing slash is a 404
    that names the right path: a redirect would drop the body (and under DEBUG Django raises instead)."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if request.method not in ("GET", "HEAD") and request.path_info.startswith(("/api/", "/fhir/")):
            return False
        return super().should_redirect_with_slash(request)
