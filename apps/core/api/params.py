"""Query-string and body handling shared by the API views: unknown parameters and fields are an error, not
ignored."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import ListField, MultipleChoiceField
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

# The largest id a bigint primary key holds: a larger one in a body is bad input, not a missing row.
MAX_ID = 2**63 - 1


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


# Fields whose text is digits: Python's int(), float() and Decimal() and Django's date parsing read any script's
# digits (Arabic-Indic "123" as 123, double-struck "12" as 12): a number not typed in ASCII was taken unseen.
_DIGIT_FIELDS = (
    serializers.IntegerField,
    serializers.FloatField,
    serializers.DecimalField,
    serializers.DateField,
    serializers.DateTimeField,
    serializers.TimeField,
    serializers.DurationField,
)


def refuse_non_ascii_numbers(serializer: serializers.Serializer, data: object) -> None:
    """A number, date or time given as text with anything but ASCII is a 400 on its field."""
    if not hasattr(data, "get"):
        return
    refused = sorted(
        name
        for name, field in serializer.fields.items()
        if isinstance(field, _DIGIT_FIELDS)
        and not field.read_only  # DRF ignores what a client sends for those
        and name in data
        and any(
            isinstance(value, str) and not value.isascii()
            for value in (data.getlist(name) if hasattr(data, "getlist") else [data[name]])
        )
    )
    if refused:
        raise ValidationError(dict.fromkeys(refused, "Write it with ASCII digits (0-9)."))


def _refuse_repeated(serializer: serializers.Serializer, data: object) -> None:
    """A single-valued field given more than once (a form's `patient_id=1&patient_id=2`) is a 400 on it: the
    serializer reads the last and drops the others unseen."""
    if not hasattr(data, "lists"):
        return  # JSON: its parser refuses a name given twice
    repeated = sorted(
        name
        for name, values in data.lists()
        if len(values) > 1 and not isinstance(serializer.fields.get(name), ListField | MultipleChoiceField)
    )
    if repeated:
        raise ValidationError(dict.fromkeys(repeated, "Given more than once; give it once."))


def validated_body(request: Request, serializer_class) -> dict:
    """Validate a JSON body with an input serializer, refusing fields it does not declare (a misspelt
    optional field (`sexx`) would otherwise be dropped unseen and its default stored instead) and, in a form,
    single-valued fields given twice. A body that is not an object (`[1, 2]`, `"text"`, `42`, `null`) is a 400
    on `body`: DRF's own answer was a non-field error ("Expected a dictionary")."""
    serializer = serializer_class(data=request.data)
    if not isinstance(request.data, dict):
        raise ValidationError({"body": ["A JSON object."]})
    unknown = sorted(set(request.data) - set(serializer.fields))
    if unknown:
        accepted = ", ".join(sorted(serializer.fields))
        raise ValidationError(dict.fromkeys(unknown, f"Unknown field; this endpoint accepts: {accepted}."))
    _refuse_repeated(serializer, request.data)
    refuse_non_ascii_numbers(serializer, request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_query(request: Request, serializer_class, context: dict | None = None) -> dict:
    """Validate the query string with an input serializer, refusing parameters it does not declare, empty
    ones, and single-valued ones given twice (the serializer would read the last and drop the others
    unseen)."""
    serializer = serializer_class(data=request.query_params, context=context or {})
    # `cursor` only where the view pages by cursor: elsewhere it would be accepted and ignored.
    pagination = getattr(request.parser_context.get("view"), "pagination_class", None)
    paged = isinstance(pagination, type) and issubclass(pagination, CursorPagination)
    reject_unknown_params(request, [*serializer.fields, *(["cursor"] if paged else [])])
    _refuse_repeated(serializer, request.query_params)
    # DRF reads `name=` in a query string as "not given" (its HTML-form rule): a search for nothing would
    # answer as a search for everything.
    blank = sorted(
        name
        for name, values in request.query_params.lists()
        if name in serializer.fields and any(not value.strip() for value in values)
    )
    if blank:
        raise ValidationError(dict.fromkeys(blank, "Empty; give a value or leave the parameter out."))
    refuse_non_ascii_numbers(serializer, request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class SinceUntilMixin:
    """For an input serializer with `since` and `until`: a window that ends before it starts is a 400, not
    an empty answer."""

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since > until:
            raise ValidationError({"since": "`since` is after `until`."})
        return attrs


DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


class InstantField(serializers.DateTimeField):
    """A moment: an ISO 8601 date-time with its offset (Z or +hh:mm), as FHIR asks, both for a measurement and
    for a filter's bound. Without one it was read on the server's clock (TIME_ZONE), where a time in the hour the
    clocks go back names two instants and one of them was stored (or searched from) silently. A filter
    (`day_starts=True`) also takes a bare date, as FHIR's `date` does: the start of that day on the hospital's
    clock, a moment the clocks' changes (at night, not at midnight, in the zones hospitals keep) leave single."""

    default_error_messages = {
        "naive": "Give the time with its offset: Z or +hh:mm (e.g. 2024-01-01T08:00:00Z).",
        "overflow": "Outside the calendar in UTC (years 1 to 9999); give a later or earlier date.",
    }

    def __init__(self, *, day_starts: bool = False, **kwargs) -> None:
        self.day_starts = day_starts
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        text = value.strip() if isinstance(value, str) else None
        if self.day_starts and text is not None and DAY_PATTERN.fullmatch(text):
            # Midnight on TIME_ZONE's clock, as DRF reads a naive time. East of UTC the calendar's first day
            # begins before year 1 in UTC, which DRF's check of the time (and the database) cannot convert.
            try:
                moment = super().to_internal_value(text)
                moment.astimezone(UTC)
            except OverflowError:
                self.fail("overflow")
            return moment
        try:
            parsed = parse_datetime(text) if text is not None else None
        except ValueError:  # well-formed but not a real time: the parent says so
            parsed = None
        if parsed is not None and timezone.is_naive(parsed):
            self.fail("naive")
        return super().to_internal_value(value)
