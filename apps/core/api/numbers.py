"""Number fields that take a JSON body's number only as a JSON number.

DRF's IntegerField and FloatField read `"80"` as 80 and `true` as 1: a client that quotes its numbers (or
sends a boolean) had them converted and stored as if it had sent a number, and would never learn its payload
is wrong. In a JSON body these answer 400 on the field instead. A query string's values are always text
(`?limit=10`), so there the text of a number reads as before."""

from __future__ import annotations

from django.http import QueryDict
from rest_framework import serializers

NUMBER_ONLY = "Must be a JSON number, not a string in quotes or a boolean."
ASCII_DIGITS = "Write it with ASCII digits (0-9)."


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
    """An integer that must arrive as a JSON number in a body."""


class StrictFloatField(_NumberOnly, serializers.FloatField):
    """A number that must arrive as a JSON number in a body (an integer is one too); never NaN or infinity
    (DRF's FloatField refuses them: a JSON 1e400 reads as infinity). The one such field: the services API had
    its own, which took `"0.5"` in a body, so one API took what the others answer 400 to."""
