"""Documentation only: the API's error shape (apps.core.api.exceptions) for views' `@extend_schema`.

Nothing here validates or renders a response; the exception handler writes these bodies.
"""

from __future__ import annotations

import copy

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
    413: "The request body is larger than the server takes (`request_too_large`; the detail names the limit in "
    "bytes, DATA_UPLOAD_MAX_MEMORY_SIZE). Nothing was read or changed.",
    429: "Rate limited: retry after `retry_after_seconds`.",
    499: "The client left before the answer (`client_closed_request`): the work was cancelled. No one reads it; "
    "access logs give such calls this status (nginx's).",
    503: "A dependency is unavailable (the database, the audit trail); retry shortly.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, in the API's shape; `descriptions` (`e404="..."`) replace the
    generic text where the operation's own reason is more useful. A status with no generic text is refused here
    (at import), not left out of the schema."""
    unknown = sorted(set(statuses) - set(_DESCRIPTIONS))
    if unknown:
        raise ValueError(f"error_responses: no generic text for {unknown}; add it to _DESCRIPTIONS")
    return {
        status: OpenApiResponse(
            ValidationErrorOutputSerializer if status == 400 else ErrorOutputSerializer,
            description=descriptions.get(f"e{status}", _DESCRIPTIONS[status]),
        )
        for status in statuses
    }


# --- Declared centrally: the 413 of every operation that takes a body --------------------------------------
_ERROR_SCHEMA = "ErrorOutput"  # ErrorOutputSerializer's component
_OUTCOME_SCHEMA = "FhirOperationOutcome"


def declare_request_too_large(result: dict, generator, request, public: bool) -> dict:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): every operation that
    takes a request body may be answered 413 `request_too_large`, whichever view it is: a chunked body past the
    limit is refused before Django runs (apps.core.chunked), one with a Content-Length as it is read
    (apps.core.api.exceptions.RequestTooLarge). Declared here once, not view by view, in the shape each API
    answers it: the API's error under /api/, an OperationOutcome under /fhir/ (the operation's own 400 shape).
    An operation that declares its own 413 keeps it."""
    schemas = result.get("components", {}).get("schemas", {})
    for path, item in result.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            responses = operation.setdefault("responses", {})
            if "413" in responses:
                continue
            if path.startswith("/fhir/"):
                content = _fhir_content(responses, schemas)
            else:
                content = {"application/json": {"schema": _component_or_inline(schemas, _ERROR_SCHEMA)}}
            responses["413"] = {"content": content, "description": _DESCRIPTIONS[413]}
            operation["responses"] = dict(sorted(responses.items()))
    return result


def _fhir_content(responses: dict, schemas: dict) -> dict:
    for status in ("400", "401"):
        content = responses.get(status, {}).get("content")
        if content:
            return copy.deepcopy(content)
    schema = {"$ref": f"#/components/schemas/{_OUTCOME_SCHEMA}"} if _OUTCOME_SCHEMA in schemas else {"type": "object"}
    return {"application/fhir+json": {"schema": schema}}


def _component_or_inline(schemas: dict, name: str) -> dict:
    if name in schemas:
        return {"$ref": f"#/components/schemas/{name}"}
    return {  # a URLconf without any operation naming the API's error (a test's): the same shape, inline
        "type": "object",
        "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
        "required": ["code", "detail"],
    }
