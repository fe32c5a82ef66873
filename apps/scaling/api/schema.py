"""Documentation only: the shapes `apps.scaling.selectors` answers with, for the views' `@extend_schema`."""

from __future__ import annotations

from rest_framework import serializers


class ForecastOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    metric = serializers.CharField()
    created_at = serializers.DateTimeField()
    model = serializers.CharField(help_text="The model the backtest chose.")
    source = serializers.CharField()
    scores = serializers.JSONField(help_text="Backtest MASE (m=24, 168), sMAPE and band coverage per model.")
    points = serializers.JSONField(help_text="[{at, p10, p50, p90}] per hour ahead.")
    recent = serializers.JSONField(help_text="[{at, value}]: the last days of history.")
    patterns = serializers.JSONField(help_text="Periods found and the named peaks.")


class EarlierForecastOutputSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    model = serializers.CharField()
    points = serializers.JSONField()


class ReplicaPlanOutputSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    hours = serializers.JSONField(help_text="[{at, replicas, p90_rps}] per hour ahead.")
    peak_replicas = serializers.IntegerField()
    min_replicas = serializers.IntegerField()
    emergency = serializers.BooleanField()
    reasons = serializers.JSONField()
    stale = serializers.BooleanField(
        help_text="Made over 24 h ago and no forecast has replaced it: its KEDA cron windows still repeat its "
        "hours every day (kept, however old, until a forecast replaces it; forecast_skipped may say why)."
    )


class EmergencyAlertRuleOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Null where the rule is hidden from you.")
    name = serializers.CharField(allow_null=True, help_text="Null where the rule is hidden from you.")
    hidden = serializers.BooleanField(
        help_text="Another service's rule, hidden from you: its name and state are left out (null)."
    )
    enabled = serializers.BooleanField(allow_null=True)
    firing = serializers.BooleanField(
        allow_null=True, help_text="Enabled and firing now: holds emergency mode on. Null where hidden."
    )


class ScalingPolicyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service = serializers.CharField(help_text="The service's slug.")
    service_name = serializers.CharField()
    enabled = serializers.BooleanField()
    min_replicas = serializers.IntegerField()
    max_replicas = serializers.IntegerField()
    floor_replicas = serializers.IntegerField(help_text="The minimum in force (lifted in emergency mode).")
    target_cpu_pct = serializers.IntegerField(allow_null=True)
    target_memory_pct = serializers.IntegerField(allow_null=True)
    vpa_mode = serializers.CharField()
    predictive = serializers.BooleanField()
    keda_enabled = serializers.BooleanField()
    emergency_mode = serializers.BooleanField(help_text="In force: set by hand, or the alert rule firing.")
    emergency_manual = serializers.BooleanField(
        help_text="Set by hand (admin): keeps emergency mode on whatever the alert rule does. Read-only here."
    )
    emergency_until = serializers.DateTimeField(
        allow_null=True, help_text="When the hand's setting ends (null: when switched off by hand)."
    )
    emergency_alert_rule = EmergencyAlertRuleOutputSerializer(
        allow_null=True, help_text="The alert rule that turns emergency mode on while it fires (null: none)."
    )
    apply_state = serializers.CharField()
    apply_error = serializers.CharField(allow_blank=True)
    history_source = serializers.CharField()
    forecasts = serializers.DictField(
        child=ForecastOutputSerializer(allow_null=True), help_text="The latest forecast per metric (null: none yet)."
    )
    forecast_skipped = serializers.DictField(
        child=serializers.CharField(),
        help_text="Why the last hourly refresh made no forecast of a metric (e.g. not enough history): "
        "{metric: reason}; the forecast shown, if any, is an older one.",
    )
    earlier_request_rate = EarlierForecastOutputSerializer(
        allow_null=True, help_text="Yesterday's request-rate forecast, to lay over the actuals."
    )
    plan = ReplicaPlanOutputSerializer(allow_null=True, help_text="The latest replica plan.")


class ScalingOverviewOutputSerializer(serializers.Serializer):
    results = ScalingPolicyOutputSerializer(many=True, help_text="By service name.")


class ManifestPreviewOutputSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's slug.")
    files = serializers.DictField(child=serializers.CharField(), help_text="File name -> YAML.")
    errors = serializers.ListField(child=serializers.CharField(), help_text="The offline validation's findings.")
    digest = serializers.CharField(help_text="SHA-256 of the manifests.")
