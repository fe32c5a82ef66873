"""Number fields that take a JSON body's number only as a JSON number.

DRF's IntegerField and FloatField read `"80"` as 80 and `true` as 1: a client that quotes its numbers (or
sends a boolean) had them converted and stored as if it had sent a number, and would never learn its payload
is wrong. In a JSON body these answer 400 on the field instead. A query string's values are always text
(`?limit=10`), so there the text of a number reads as before.

An integer field also refused a JSON float only when it had a fraction: `{"encounter_id": 3.0}` attached
encounter 3 and `{"offset": 1e2}` read as 100, and the query string's `?limit=2_0` as 20 (Python's int() takes
underscores, DRF strips a trailing ".0"). An integer is now a JSON integer in a body, and optional sign and ASCII
digits in a query string."""

from __future__ import annotations

import re

from django.http import QueryDict
from rest_framework import serializers

NUMBER_ONLY = "Must be a JSON number, not a string in quotes or a boolean."
ASCII_DIGITS = "Write it with ASCII digits (0-9)."
WHOLE_NUMBER = "A whole number is required, written without a decimal point or exponent."

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


class _NumberOnly:
    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not _from_query_string(self)):
            raise serializers.ValidationError(NUMBER_ONLY, code="invalid")
        if isinstance(data, str) and not data.isascii():  # Python's float() and int() read "٣٠٠" as 300
            raise serializers.ValidationError(ASCII_DIGITS, code="invalid")
        return super().to_internal_value(data)


def _from_query_string(field: serializers.Field) -> bool:
    """Whether the field reads a query string (or a form), whose values are all text."""
    return isinstance(getattr(field.root, "initial_data", None), QueryDict)


class StrictIntegerField(_NumberOnly, serializers.IntegerField):
    """An integer that must arrive as a JSON integer in a body (3.0 and 1e2 are JSON numbers, but not written as
    whole ones: a client sending them computes the value, and may have meant something else), and as a sign and
    ASCII digits in a query string."""

    def to_internal_value(self, data):
        if isinstance(data, float):
            raise serializers.ValidationError(WHOLE_NUMBER, code="invalid")
        # A string in a body is _NumberOnly's to refuse, as quoted; a query string's text is checked here.
        if isinstance(data, str) and data.isascii() and _from_query_string(self) and not _INTEGER_TEXT.fullmatch(data):
            raise serializers.ValidationError(WHOLE_NUMBER, code="invalid")
        return super().to_internal_value(data)


class StrictFloatField(_NumberOnly, serializers.FloatField):
    """A number that must arrive as a JSON number in a body (an integer is one too); never NaN or infinity
    (DRF's FloatField refuses them: a JSON 1e400 reads as infinity). The one such field: the services API had
    its own, which took `"0.5"` in a body, so one API took what the others answer 400 to."""
