"""Query-string handling shared by the API views: unknown parameters are an error, not ignored."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def reject_unknown_params(request: Request, allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ValidationError(
            {
                name: f"Unknown parameter; this endpoint accepts: {', '.join(sorted(allowed)) or 'none'}."
                for name in unknown
            }
        )


def validated_query(request: Request, serializer_class, context: dict | None = None) -> dict:
    """Validate the query string with an input serializer, refusing parameters it does not declare."""
    serializer = serializer_class(data=request.query_params, context=context or {})
    reject_unknown_params(request, [*serializer.fields, "cursor"])
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
