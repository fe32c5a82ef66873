"""One JSON error shape for the whole API: `{"detail": ..., "code": ...}` plus field errors."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.core.chunked import too_large_detail


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; retry shortly. Nothing was changed."
    default_code = "database_unavailable"


class CacheUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Redis is unavailable and this request needs it; retry shortly. Nothing was changed."
    default_code = "cache_unavailable"


class RequestTooLarge(exceptions.APIException):
    """A body past DATA_UPLOAD_MAX_MEMORY_SIZE: answered as apps.core.chunked answers a chunked one past the same
    limit. Django's own answer was a 400 naming a setting (under DEBUG an HTML page)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self) -> None:
        super().__init__(too_large_detail())


# Seconds a client should wait before retrying a request the database (or Redis) could not serve.
DATABASE_RETRY_AFTER = 2


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    # Lost or refused database connections (a restart, a failover, an exhausted pool) are the server's
    # temporary state, not a bug: 503 with Retry-After. The request's transaction was rolled back.
    if isinstance(exc, OperationalError | InterfaceError):
        exc = DatabaseUnavailable()
        exc.wait = DATABASE_RETRY_AFTER  # DRF sends it as Retry-After
    # Most Redis use falls back (the cache stack, the limiter's fail-open); a view that needs Redis itself (a
    # posted FHIR search's next page lives there) answers the same temporary 503, never a 500. Only a lost or
    # silent server: a command Redis refused is a bug, and stays one.
    elif isinstance(exc, RedisConnectionError | RedisTimeoutError) or (
        isinstance(exc, ConnectionInterrupted) and isinstance(exc.__cause__, RedisConnectionError | RedisTimeoutError)
    ):
        exc = CacheUnavailable()
        exc.wait = DATABASE_RETRY_AFTER
    # Django raises it as the body is read; unhandled here it reached Django's SuspiciousOperation 400. Its log line
    # is kept (one line: apps.core.log_filters drops the traceback).
    elif isinstance(exc, RequestDataTooBig):
        logging.getLogger("django.security.RequestDataTooBig").error(
            str(exc), extra={"status_code": 413, "request": getattr(context.get("request"), "_request", None)}
        )
        exc = RequestTooLarge()
    # Django's own (get_object_or_404, a permission check) get the API's shape and code, as DRF's do.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    # Model validation raised by a service becomes a 400 with field-level messages, keeping its code: a duplicate
    # MRN's `duplicate_mrn` was answered as a bare `invalid`.
    validation_code = "invalid"
    if isinstance(exc, DjangoValidationError):
        validation_code = _shared_code(exc)
        detail = get_error_detail(exc)
        exc = exceptions.ValidationError(detail=detail if isinstance(detail, dict) else {"non_field_errors": detail})

    response = exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "detail": "Invalid input.",
            "code": validation_code,
            "errors": response.data,
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "detail": response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc),
            "code": codes if isinstance(codes, str) else "error",
        }
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
        response.data["retry_after_seconds"] = int(exc.wait)
    return response


def _shared_code(exc: DjangoValidationError) -> str:
    """The one code every error of a Django ValidationError carries (a service's `duplicate_mrn`), else `invalid`:
    errors of mixed or no codes say nothing one code could."""
    if hasattr(exc, "error_dict"):
        errors = [error for field in exc.error_dict.values() for error in field]
    else:
        errors = exc.error_list
    codes = {error.code for error in errors}
    code = codes.pop() if len(codes) == 1 else None
    return code if isinstance(code, str) and code else "invalid"
