from rest_framework import serializers

from apps.audit.models import AuditEvent
from apps.core.api.params import MAX_ID, InstantField, SinceUntilMixin


class AuditListInputSerializer(SinceUntilMixin, serializers.Serializer):
    patient_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    actor_type = serializers.ChoiceField(choices=AuditEvent.ActorType.choices, required=False)
    actor_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)
    resource_type = serializers.CharField(max_length=40, required=False)
    since = InstantField(required=False, day_starts=True)
    until = InstantField(required=False, day_starts=True)
    page_size = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class AuditEventOutputSerializer(serializers.ModelSerializer):
    patient_ids = serializers.ListField(
        child=serializers.IntegerField(), allow_null=True, read_only=True,
        help_text="Every patient a response spanning patients disclosed (internal ids); null otherwise.",
    )  # fmt: skip

    class Meta:
        model = AuditEvent
        fields = ["id", "chain_id", "seq", "recorded_at",
                  "actor_type", "actor_id", "actor_name", "action", "resource_type",
                  "resource_id", "patient_id", "patient_ids", "outcome", "source_ip", "purpose_of_use", "request_id",
                  "query_digest", "result_count", "served_from_cache", "hash"]  # fmt: skip
