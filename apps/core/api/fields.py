"""Serializer fields that take a value only in its own JSON type.

DRF's text fields turn a JSON number into a string (`{"slug": 12}` stored the slug "12"), so a malformed
request was stored as something nobody sent. These answer 400 on the field instead. Query-string and form
values are always strings, so they read as before. Numbers: apps.core.api.numbers."""

from __future__ import annotations

from django.http import QueryDict
from rest_framework import serializers

TEXT_ONLY = "Must be a string (JSON text in quotes), not a number, boolean, list or object."
BOOLEAN_ONLY = "Must be a JSON boolean (true or false), not a string, number or null."


class _TextOnly:
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(TEXT_ONLY, code="invalid")
        return super().to_internal_value(data)


class StrictCharField(_TextOnly, serializers.CharField):
    """Text that must arrive as text."""


class StrictSlugField(_TextOnly, serializers.SlugField):
    """A slug that must arrive as text."""


class StrictURLField(_TextOnly, serializers.URLField):
    """A URL that must arrive as text."""


class StrictBooleanField(serializers.BooleanField):
    """A boolean that must arrive as a JSON boolean in a JSON body: DRF's BooleanField read "yes", "Y", "on",
    "0" and 1 as booleans (`"is_active": "no"` deactivated a service), as the text and number fields once read
    the wrong JSON type: a guess at what the client meant, stored. A form body's values are all text, so there
    DRF's strings ("true", "false", "on", ...) read as before."""

    def to_internal_value(self, data):
        if not isinstance(data, bool) and not isinstance(getattr(self.root, "initial_data", None), QueryDict):
            raise serializers.ValidationError(BOOLEAN_ONLY, code="invalid")
        return super().to_internal_value(data)
