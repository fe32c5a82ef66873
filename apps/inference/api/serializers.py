import unicodedata

from rest_framework import serializers

from apps.core.api.fields import StrictBooleanField
from apps.core.api.numbers import StrictIntegerField
from apps.core.api.params import MAX_ID

MAX_INPUTS = 64
MAX_CHARS = 20_000


def _has_content(text: str) -> bool:
    """Whether the text has a character besides white space and invisible format characters (Unicode Cf: zero
    width spaces and joiners, U+FEFF, soft hyphens), which str.strip() keeps: "\u200b" was embedded as text."""
    return any(not char.isspace() and unicodedata.category(char) != "Cf" for char in text)


class TextField(serializers.CharField):
    """Text as sent: a JSON string (a number is not text) with something in it besides white space and
    invisible format characters; kept as sent, since all of it is part of what a model reads."""

    default_error_messages = {
        "not_text": "Must be a string.",
        "no_content": "Must contain more than white space and invisible characters.",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=MAX_CHARS, allow_blank=False, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        if not _has_content(data):
            self.fail("no_content")
        return super().to_internal_value(data)


class EmbedInputSerializer(serializers.Serializer):
    inputs = serializers.ListField(
        child=TextField(),
        min_length=1, max_length=MAX_INPUTS, help_text=f"1 to {MAX_INPUTS} texts.",
    )  # fmt: skip
    patient_id = StrictIntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The patient the texts are about: the call is then audited.",
    )


class GenerateInputSerializer(serializers.Serializer):
    prompt = TextField()
    max_new_tokens = StrictIntegerField(min_value=1, required=False)
    stream = StrictBooleanField(
        default=False, help_text="Server-sent events: text as it is generated, then a `done` event."
    )
    patient_id = StrictIntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The patient the prompt is about: the call is then audited.",
    )
