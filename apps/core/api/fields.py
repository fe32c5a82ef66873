"""Serializer fields that take a value only in its own JSON type.

DRF's text fields turn a JSON number into a string (`{"slug": 12}` stored the slug "12"), so a malformed
request was stored as something nobody sent. These answer 400 on the field instead. Query-string and form
values are always strings, so they read as before. Numbers: apps.core.api.numbers."""

from __future__ import annotations

from rest_framework import serializers

TEXT_ONLY = "Must be a string (JSON text in quotes), not a number, boolean, list or object."


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
