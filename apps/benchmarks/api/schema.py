"""Documentation only: the shapes `apps.benchmarks.selectors` answers with, for the views' `@extend_schema`."""

from __future__ import annotations

from rest_framework import serializers

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun


class RegressionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField()
    plan = serializers.CharField()
    metric = serializers.CharField()
    baseline = serializers.FloatField()
    current = serializers.FloatField()
    change_pct = serializers.FloatField()
    p_value = serializers.FloatField()
    threshold_pct = serializers.FloatField()
    change_point = serializers.BooleanField()
    detected_at = serializers.DateTimeField()
    acknowledged = serializers.BooleanField()


class BenchmarkRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    plan = serializers.CharField()
    plan_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=BenchmarkPlan.Kind.choices)
    service = serializers.CharField(help_text="The service's slug.")
    status = serializers.ChoiceField(choices=BenchmarkRun.Status.choices)
    passed = serializers.BooleanField(allow_null=True, help_text="Null until the run has verdicts.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.FloatField()
    progress_message = serializers.CharField(allow_blank=True)
    summary = serializers.JSONField(help_text="Requests, errors, req/s, latency percentiles.")
    regressions = RegressionOutputSerializer(many=True)


class BenchmarkRunListOutputSerializer(serializers.Serializer):
    results = BenchmarkRunOutputSerializer(many=True, help_text="Newest first.")


class BenchmarkRunDetailOutputSerializer(BenchmarkRunOutputSerializer):
    endpoints = serializers.JSONField()
    timeline = serializers.JSONField(
        help_text="Per second, or per timeline_step_s seconds past 1,500 points: users (the most), req/s and "
        "errors/s (averaged), p95 (the highest second's)."
    )
    timeline_step_s = serializers.IntegerField(help_text="The seconds each timeline point covers.")
    histogram = serializers.JSONField(help_text="HDR latency histogram: [[ms, count]].")
    findings = serializers.JSONField(help_text="Per shape: the knee, spike recovery, endurance slope.")
    verdicts = serializers.JSONField()
    error = serializers.CharField(allow_blank=True)
    generator_cpu_max = serializers.FloatField(allow_null=True, help_text="Locust's own CPU, % of one core.")
    report_url = serializers.CharField(help_text="The run's HTML report (a dashboard page, not the API).")
