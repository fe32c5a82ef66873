from rest_framework import serializers


class WhoAmIOutputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["client", "user"])
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
