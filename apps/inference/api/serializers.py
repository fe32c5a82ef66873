from rest_framework import serializers

from apps.core.api.params import MAX_ID

MAX_INPUTS = 64
MAX_CHARS = 20_000


class EmbedInputSerializer(serializers.Serializer):
    inputs = serializers.ListField(
        child=serializers.CharField(max_length=MAX_CHARS, allow_blank=False, trim_whitespace=False),
        min_length=1, max_length=MAX_INPUTS, help_text=f"1 to {MAX_INPUTS} texts.",
    )  # fmt: skip
    patient_id = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The patient the texts are about: the call is then audited.",
    )


class GenerateInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=MAX_CHARS, allow_blank=False, trim_whitespace=False)
    max_new_tokens = serializers.IntegerField(min_value=1, required=False)
    stream = serializers.BooleanField(
        default=False, help_text="Server-sent events: text as it is generated, then a `done` event."
    )
    patient_id = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The patient the prompt is about: the call is then audited.",
    )
