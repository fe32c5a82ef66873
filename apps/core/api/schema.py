"""Documentation only: the API's error shape (apps.core.api.exceptions) for views' `@extend_schema`.

Nothing here validates or renders a response; the exception handler writes these bodies.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable: not_found, permission_denied, throttled, ...")
    retry_after_seconds = serializers.IntegerField(required=False, help_text="On a 429: when to retry.")


class ValidationErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text='"Invalid input." (or what could not be parsed)')
    code = serializers.CharField(help_text='"invalid" (or "parse_error")')
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="By field or parameter: its messages (a list, or one string for an unknown parameter); an item "
        "of a list field is keyed by its index. Absent when the body could not be parsed at all (code parse_error).",
    )


_DESCRIPTIONS = {
    400: "Invalid input: an unknown, repeated or malformed parameter or field.",
    401: "No or invalid credentials.",
    403: "The credentials lack the permission or scope this operation needs.",
    404: "No such object (or one hidden from this caller).",
    429: "Rate limited: retry after `retry_after_seconds`.",
    503: "A dependency is unavailable (the database, the audit trail); retry shortly.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, in the API's shape; `descriptions` (`e404="..."`) replace the
    generic text where the operation's own reason is more useful."""
    return {
        status: OpenApiResponse(
            ValidationErrorOutputSerializer if status == 400 else ErrorOutputSerializer,
            description=descriptions.get(f"e{status}", _DESCRIPTIONS[status]),
        )
        for status in statuses
    }
