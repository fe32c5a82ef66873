"""Documentation only: the shapes the metrics views and `apps.metrics.selectors` answer with."""

from __future__ import annotations

from rest_framework import serializers

from apps.metrics.api.serializers import SERIES_METRICS
from apps.metrics.models import Alert, AlertRule


class SeriesOutputSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=SERIES_METRICS)
    service = serializers.CharField(allow_null=True, help_text="The service's slug; null: every route this user sees.")
    step = serializers.IntegerField(help_text="Seconds per point.")
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="[ISO start of the step, value or null without data], oldest first.",
    )


class SloTargetsOutputSerializer(serializers.Serializer):
    p95_ms = serializers.IntegerField()
    p99_ms = serializers.IntegerField()
    error_rate_pct = serializers.FloatField()


class SloWindowOutputSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    errors = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    max_ms = serializers.FloatField(allow_null=True)
    error_rate_pct = serializers.FloatField(allow_null=True)
    latency_judged = serializers.BooleanField(
        help_text="Whether the window holds enough requests (min_requests) to judge its p95 and p99."
    )
    p95_met = serializers.BooleanField(allow_null=True, help_text="Null under min_requests requests.")
    p99_met = serializers.BooleanField(allow_null=True, help_text="Null under min_requests requests.")
    error_rate_met = serializers.BooleanField(allow_null=True)
    error_budget_remaining = serializers.FloatField(allow_null=True, help_text="0-1 of the allowed errors unspent.")
    rate_limited = serializers.IntegerField(
        help_text="The limiter's refusals (429), left out of the other figures, which are of the requests served."
    )


class SloStatusOutputSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's slug.")
    name = serializers.CharField()
    min_requests = serializers.IntegerField(
        help_text="The requests a window needs for its p95 and p99 to be judged (OPTIMIZER_SERVICE_MIN_REQUESTS)."
    )
    targets = SloTargetsOutputSerializer()
    windows = serializers.DictField(child=SloWindowOutputSerializer(), help_text="By window: 1h, 24h, 7d.")


class SloListOutputSerializer(serializers.Serializer):
    results = SloStatusOutputSerializer(many=True, help_text="The active services this user sees that have routes.")


class AlertOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField(help_text="The rule's name when the alert fired (kept if the rule is deleted).")
    rule_id = serializers.IntegerField(allow_null=True, help_text="Null: the rule (or its service) was deleted.")
    severity = serializers.ChoiceField(choices=AlertRule.Severity.choices)
    metric = serializers.ChoiceField(choices=AlertRule.Metric.choices, help_text="The rule's, when it fired.")
    operator = serializers.ChoiceField(choices=AlertRule.Operator.choices)
    threshold = serializers.FloatField(allow_null=True, help_text="The rule's, when it fired.")
    service = serializers.CharField(allow_null=True, help_text="The rule's service's name; null: a rule of no service.")
    state = serializers.ChoiceField(choices=Alert.State.choices)
    message = serializers.CharField()
    value = serializers.FloatField(help_text="The value when it fired.")
    last_value = serializers.FloatField()
    started_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class AlertListOutputSerializer(serializers.Serializer):
    results = AlertOutputSerializer(many=True, help_text="Newest first.")
