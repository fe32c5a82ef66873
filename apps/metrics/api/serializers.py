from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from rest_framework import serializers

from apps.core.api.params import InstantField
from apps.services.models import Service

SERIES_METRICS = [
    *("p50_ms", "p95_ms", "p99_ms", "rps", "requests", "error_rate_pct", "rate_limited", "rate_limited_rps"),
    "cache_hit_rate_pct",
    *("cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct", "inference_tokens_per_s"),
    "inference_load_failures",
]
MAX_POINTS = 1440
CALENDAR_MARGIN = datetime.min + timedelta(days=2)
MAX_END = datetime.max - timedelta(days=2)


def request_step_problem(metric: str, start: datetime, step: int) -> str | None:
    """Request figures are rollups of whole minutes (whole hours past MINUTE_ROLLUPS_KEPT), each stamped with
    its start: a finer step, or one that is not a whole number of them, put a minute's (an hour's) requests
    in one step and none in the next, and the rate read 6 or 60 times what it was, then 0."""
    from apps.metrics.selectors import LATENCY_METRICS
    from apps.metrics.services import MINUTE_ROLLUPS_KEPT

    if metric not in LATENCY_METRICS:
        return None
    hourly = start < timezone.now() - MINUTE_ROLLUPS_KEPT
    unit = 3600 if hourly else 60
    if step % unit == 0:
        return None
    if hourly:
        return f"Request figures older than {MINUTE_ROLLUPS_KEPT.days} days are kept per hour: a step of whole hours."
    return "Request figures are kept per minute: a step of whole minutes (60, 300, 900, ...)."


def request_grain(metric: str, start: datetime) -> int | None:
    """The seconds a request rollup covers at `start` (60; 3600 past MINUTE_ROLLUPS_KEPT), None for other metrics."""
    from apps.metrics.selectors import LATENCY_METRICS
    from apps.metrics.services import MINUTE_ROLLUPS_KEPT

    if metric not in LATENCY_METRICS:
        return None
    return 3600 if start < timezone.now() - MINUTE_ROLLUPS_KEPT else 60


def on_grain(start: datetime, seconds: int) -> datetime:
    """The first whole `seconds` (since the epoch, UTC) at or after `start`."""
    late = (start - EPOCH) % timedelta(seconds=seconds)
    return start + (timedelta(seconds=seconds) - late) if late else start


def grain_floor(at: datetime, seconds: int) -> datetime:
    """The last whole `seconds` (since the epoch, UTC) at or before `at`."""
    return at - (at - EPOCH) % timedelta(seconds=seconds)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SeriesInputSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=SERIES_METRICS)
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), required=False)
    namespace = serializers.SlugField(required=False, default="")
    # With their offset, as the other bounds: read on TIME_ZONE's clock, the hour the clocks go back was its first.
    start = InstantField(required=False, day_starts=True)
    end = InstantField(required=False, day_starts=True)
    step = serializers.IntegerField(min_value=10, max_value=86_400, default=60, help_text="Seconds per point.")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        user = self.context.get("user")
        if user is not None:  # a service hidden from this user is as unknown as a missing one
            from apps.services.selectors import services_visible_to

            fields["service"].queryset = services_visible_to(user)
        return fields

    def validate_namespace(self, namespace: str) -> str:
        """A namespace no policy names has no cache series: answered with nulls, a typo read as "no reads"."""
        from apps.caching.defaults import DEFAULT_POLICIES
        from apps.caching.models import CachePolicy

        if (
            namespace
            and namespace not in DEFAULT_POLICIES
            and not CachePolicy.objects.filter(namespace=namespace).exists()
        ):
            raise serializers.ValidationError(f"No cache namespace {namespace!r}.")
        return namespace

    def validate(self, data: dict) -> dict:
        from apps.metrics.selectors import COUNTED_SERIES, LATENCY_METRICS

        service = data.get("service")
        if service is not None and not service.route_prefix and data["metric"] in LATENCY_METRICS:
            # routes_under([""]) matches no route: every step read 0 requests, as if the service had none.
            raise serializers.ValidationError(
                {"service": f"Service {service.slug!r} has no route prefix: its requests are not told apart."}
            )
        data["end"] = data.get("end") or timezone.now()
        # The default window reaches an hour back and the last step a day on: both must stay in the calendar.
        for name in ("start", "end"):
            if name in data and not CALENDAR_MARGIN <= data[name].replace(tzinfo=None) <= MAX_END:
                raise serializers.ValidationError({name: "Too close to the calendar's limits."})
        data["end"] = data["end"].astimezone(UTC)  # the same zone's datetimes subtract by the wall clock
        if data.get("start") is None:
            # The hour before `end`, begun on a whole step (as the dashboard asks): begun at `end` less an hour
            # (12:04:37.2), every step straddled two minutes, so each minute's requests were shown a step early,
            # under the label of the minute before, and the minute it began in was left out.
            default = int((data["end"] - timedelta(hours=1)).timestamp()) // data["step"] * data["step"]
            data["start"] = datetime.fromtimestamp(default, UTC)
        data["start"] = data["start"].astimezone(UTC)
        if data["start"] >= data["end"]:
            raise serializers.ValidationError({"start": "Must be before end."})
        # A window wholly ahead of the clock has nothing recorded: answered with empty points, a typo in a year
        # (or a client's clock far ahead) read as "no traffic" instead of a mistake.
        if data["start"] > timezone.now():
            raise serializers.ValidationError({"start": "In the future: a series reads what was recorded up to now."})
        # Request figures are rollups of whole minutes (hours), each stamped with its start: from 12:00:30 the
        # minute 12:00 was left out and each step held the next minute's requests under a label 30 s before
        # them. The window begins on the first whole minute (hour) at or after `start`: nothing from before
        # `start` is counted, and the points are labelled with the minutes their requests are of.
        grain = request_grain(data["metric"], data["start"])
        if grain is not None:
            data["start"] = on_grain(data["start"], grain)
            unit = "hour" if grain == 3600 else "minute"
            if data["start"] >= data["end"]:
                raise serializers.ValidationError(
                    {"start": f"Request figures are kept per {unit}: the window must hold a whole {unit}."}
                )
            # Likewise an `end` inside a minute (hour) that has ended: its rollup holds the requests up to its
            # own end, so the last step counted requests from after `end` and divided them by the seconds
            # before it (ending 15 s into a minute, a rate four times what it was). The window ends on the
            # whole minute before; a minute still in progress holds only the requests up to now, and is kept.
            last = grain_floor(data["end"], grain)
            if last != data["end"] and last + timedelta(seconds=grain) <= timezone.now():
                if last <= data["start"]:
                    raise serializers.ValidationError(
                        {"end": f"Request figures are kept per {unit}: the window must hold a whole {unit}."}
                    )
                data["end"] = last
        else:
            # Series points folded per minute (past 48 h) or hour (past 30 days) are stamped with their start
            # as well: from M+30 s the minute M+1's point was shown under the label M+30 s. The grain is that of
            # the points stored, not of their age: raw points of any age are instants, on no grain.
            from apps.metrics.selectors import stored_grain

            grain = stored_grain(data["metric"], since=data["start"], until=data["end"], namespace=data["namespace"])
            if grain is not None:
                data["start"] = on_grain(data["start"], grain)
                if data["start"] >= data["end"]:
                    unit = "hour" if grain == 3600 else "minute"
                    raise serializers.ValidationError(
                        {"start": f"Figures this old are kept per {unit}: the window must hold a whole {unit}."}
                    )
                # A counter stored per hour (minute) read in finer steps put the hour's count in one step and 0
                # in the others, which reads as a burst then nothing.
                counter = data["metric"] in COUNTED_SERIES or data["metric"] == "cache_hit_rate_pct"
                if counter and data["step"] % grain:
                    unit = "hour" if grain == 3600 else "minute"
                    whole = f"a step of whole {unit}s ({grain}, {grain * 2}, ...)"
                    raise serializers.ValidationError({"step": f"Stored per {unit} in this window: {whole}."})
        problem = request_step_problem(data["metric"], data["start"], data["step"])
        if problem:
            raise serializers.ValidationError({"step": problem})
        if (data["end"] - data["start"]).total_seconds() / data["step"] > MAX_POINTS:
            raise serializers.ValidationError({"step": f"At most {MAX_POINTS} points per query: widen the step."})
        return data


class AlertListInputSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["firing", "resolved"], required=False)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
