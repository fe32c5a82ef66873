"""Documentation only: the shape `apps.ratelimits.selectors.policy_overview` answers with."""

from __future__ import annotations

from rest_framework import serializers

from apps.ratelimits.models import RateLimitAdjustment


class RateLimitUsageOutputSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    refused = serializers.IntegerField(help_text="Answered 429.")
    minutes = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField()),
        help_text="[ISO minute, requests, refused] per minute with traffic.",
    )
    busiest_client = serializers.CharField(
        allow_null=True,
        help_text="The client that attempted the most in one minute against the limit then (admitted and refused "
        "together): an API client's name (to a reader with accounts.view_apiclient; to anyone else \"API client "
        '#<id>"), "user:<id>" for a signed-in user, "session" (older rollups: all '
        'signed-in users together), "anonymous", or "unrecognised client"; clients exempt from the limits are '
        "never it.",
    )
    busiest_client_minute = serializers.DateTimeField(allow_null=True, help_text="That minute.")
    busiest_client_per_minute = serializers.IntegerField(
        help_text="Of its attempts in that minute, those admitted (not what names it: busiest_client_attempted is)."
    )
    busiest_client_attempted = serializers.IntegerField(help_text="Its requests in that minute, admitted or not.")
    busiest_client_refused = serializers.IntegerField(help_text="Of those, answered 429.")
    busiest_client_limit_per_minute = serializers.FloatField(
        allow_null=True, help_text="The limit in force in that minute, per minute (the adaptive factor then)."
    )
    busiest_client_share = serializers.FloatField(
        help_text="Its admitted requests in that minute against the limit in force in that minute (it is named "
        "by its attempted requests against that limit, busiest_client_attempted / busiest_client_limit_per_minute)."
    )
    exempt_clients = serializers.ListField(
        child=serializers.CharField(),
        help_text="Clients exempt from the limits (load tests' tokens) seen, each shown as busiest_client is.",
    )
    exempt_requests = serializers.IntegerField(help_text="Their requests: not limited, not in the share.")


class RateLimitAdjustmentOutputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    direction = serializers.ChoiceField(choices=RateLimitAdjustment.Direction.choices)
    old_factor = serializers.FloatField()
    new_factor = serializers.FloatField()
    reason = serializers.CharField()


class RateLimitPolicyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()
    requests = serializers.IntegerField()
    effective_requests = serializers.IntegerField(help_text="The limit in force: requests x current_factor.")
    period_seconds = serializers.IntegerField()
    burst_per_second = serializers.IntegerField(allow_null=True)
    fail_open = serializers.BooleanField()
    priority = serializers.IntegerField()
    adaptive = serializers.BooleanField()
    current_factor = serializers.FloatField()
    signal_read_at = serializers.DateTimeField(
        allow_null=True, help_text="The adaptive controller's last load reading; a tightening lapses 15 min after."
    )
    usage = RateLimitUsageOutputSerializer(help_text="The last hour.")
    adjustments = RateLimitAdjustmentOutputSerializer(many=True, help_text="The latest 20, newest first.")


class RateLimitOverviewOutputSerializer(serializers.Serializer):
    results = RateLimitPolicyOutputSerializer(
        many=True,
        help_text="The scopes with the most 429s in the last hour (usage.refused) first, then by priority, then scope.",
    )
