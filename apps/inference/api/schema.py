"""Documentation only: the shapes the inference views answer with, for their `@extend_schema`."""

from __future__ import annotations

from rest_framework import serializers

from apps.inference.models import ModelDeployment


class EmbedOutputSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    quantization = serializers.CharField(help_text="The mode that served the call.")
    dimensions = serializers.IntegerField()
    embeddings = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()), help_text="One vector per input, in order."
    )
    cached = serializers.BooleanField(help_text="Served from the ai_inference cache.")


class GenerateOutputSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    quantization = serializers.CharField(help_text="The mode that served the call.")
    text = serializers.CharField(allow_blank=True)
    output_tokens = serializers.IntegerField()
    cached = serializers.BooleanField(help_text="Served from the ai_inference cache.")


class QuantizationProfileOutputSerializer(serializers.Serializer):
    mode = serializers.CharField()
    device = serializers.CharField()
    available = serializers.BooleanField()
    chosen = serializers.BooleanField()
    verdict = serializers.CharField(allow_blank=True)
    p50_ms_batch1 = serializers.FloatField(allow_null=True)
    p95_ms_batch1 = serializers.FloatField(allow_null=True)
    best_batch_size = serializers.IntegerField(allow_null=True)
    p95_ms_best_batch = serializers.FloatField(allow_null=True)
    sequences_per_s = serializers.FloatField(allow_null=True)
    tokens_per_s = serializers.FloatField(allow_null=True)
    tokens_per_s_batch1 = serializers.FloatField(allow_null=True)
    ttft_ms = serializers.FloatField(allow_null=True)
    tpot_ms = serializers.FloatField(allow_null=True)
    peak_memory_mb = serializers.FloatField(allow_null=True)
    weights_mb = serializers.FloatField(allow_null=True)
    load_seconds = serializers.FloatField(allow_null=True)
    fidelity = serializers.JSONField()
    fidelity_loss = serializers.FloatField(allow_null=True)


class DeploymentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    task = serializers.ChoiceField(choices=ModelDeployment.Task.choices)
    source = serializers.CharField()
    service = serializers.CharField(allow_null=True, help_text="The service's slug.")
    enabled = serializers.BooleanField()
    quantization = serializers.CharField(help_text="As configured (auto: the measurement chooses).")
    serving_quantization = serializers.CharField(
        help_text="The mode calls are answered in by this server process now: its loaded model (also one kept "
        "after an edit failed to load), else the mode this host loads (fp32 where a measured mode cannot run here)."
    )
    serving_reason = serializers.CharField(
        allow_null=True, help_text="Why serving_quantization is not the mode configured or measured; null when it is."
    )
    load_failure = serializers.CharField(
        allow_null=True, help_text="The last load that failed on a serving process (which, where, what served instead)."
    )
    load_failed_at = serializers.DateTimeField(allow_null=True)
    chosen_quantization = serializers.CharField(allow_null=True, help_text="The measurement's choice, if any.")
    measured_at = serializers.DateTimeField(allow_null=True)
    max_batch_size = serializers.IntegerField()
    max_queue_delay_ms = serializers.FloatField()
    slo_p95_ms = serializers.FloatField()
    fidelity_budget = serializers.FloatField()
    profiles = QuantizationProfileOutputSerializer(
        many=True, help_text="The last measurement: the chosen mode first, then the fastest."
    )


class DeploymentOverviewOutputSerializer(serializers.Serializer):
    results = DeploymentOutputSerializer(many=True)
