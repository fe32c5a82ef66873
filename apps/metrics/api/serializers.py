from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from rest_framework import serializers

from apps.services.models import Service

SERIES_METRICS = [
    *("p50_ms", "p95_ms", "p99_ms", "rps", "requests", "error_rate_pct", "cache_hit_rate_pct"),
    *("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct", "inference_tokens_per_s"),
]
MAX_POINTS = 1440
CALENDAR_MARGIN = datetime.min + timedelta(days=2)
MAX_END = datetime.max - timedelta(days=2)


class SeriesInputSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=SERIES_METRICS)
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), required=False)
    namespace = serializers.SlugField(required=False, default="")
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    step = serializers.IntegerField(min_value=10, max_value=86_400, default=60, help_text="Seconds per point.")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        user = self.context.get("user")
        if user is not None:  # a service hidden from this user is as unknown as a missing one
            from apps.services.selectors import services_visible_to

            fields["service"].queryset = services_visible_to(user)
        return fields

    def validate(self, data: dict) -> dict:
        data["end"] = data.get("end") or timezone.now()
        # The default window reaches an hour back and the last step a day on: both must stay in the calendar.
        for name in ("start", "end"):
            if name in data and not CALENDAR_MARGIN <= data[name].replace(tzinfo=None) <= MAX_END:
                raise serializers.ValidationError({name: "Too close to the calendar's limits."})
        data["end"] = data["end"].astimezone(UTC)  # the same zone's datetimes subtract by the wall clock
        data["start"] = (data.get("start") or data["end"] - timedelta(hours=1)).astimezone(UTC)
        if data["start"] >= data["end"]:
            raise serializers.ValidationError({"start": "Must be before end."})
        if (data["end"] - data["start"]).total_seconds() / data["step"] > MAX_POINTS:
            raise serializers.ValidationError({"step": f"At most {MAX_POINTS} points per query: widen the step."})
        return data


class AlertListInputSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["firing", "resolved"], required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
