from rest_framework import serializers


class WhoAmIOutputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["client", "user"])
    name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    csrf_token = serializers.CharField(
        required=False,
        help_text="A staff session's CSRF token, to send as X-CSRFToken on its writes (the cookie is HttpOnly); "
        "absent for a bearer-token client, which needs none.",
    )
