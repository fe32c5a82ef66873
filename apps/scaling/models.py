"""Scaling policies (edited in admin), their deployment state on a cluster, forecasts and recommendations."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

QUANTITY = RegexValidator(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$", "A Kubernetes quantity, e.g. 500m or 1Gi.")
# A Docker image reference (distribution's grammar): [host[:port]/]path[:tag][@sha256:digest], the path in
# lower case. Kubernetes takes any string here and fails only when the kubelet pulls it.
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
IMAGE_REFERENCE = RegexValidator(
    rf"^(?:{_HOST}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@sha256:[a-f0-9]{{64}})?\Z",
    "An image reference: [registry[:port]/]lower-case/path[:tag][@sha256:digest], e.g. "
    "registry.example.org:5000/medical/triage:1.4.",
)


def quantity_value(text: str) -> Decimal | None:
    """A Kubernetes quantity in base units (cores, bytes), read by the kubernetes client's own parser (as the
    manifests are); None when QUANTITY refuses it."""
    if QUANTITY.regex.fullmatch(text or "") is None:
        return None
    from kubernetes.utils import parse_quantity  # a heavy import, needed only when a policy is validated

    return parse_quantity(text)


# A PromQL label selector's matchers (label op "value", comma-separated), pasted inside {...} of every query:
# anything else breaks the queries or, with a '}', ends the selector and adds to the query.
_MATCHER = r"""\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
PROMETHEUS_SELECTOR = re.compile(rf"{_MATCHER}(?:,{_MATCHER})*,?\s*")

# A forecast gone wrong (a spike in the history, a capacity per replica set far too low) asked the optimizer
# for thousands of replicas, and `optimize --apply` raised the maximum to it: the cluster would have scaled
# to that and the bill with it. Twice the default maximum, per policy in admin.
MAX_REPLICAS_CEILING = 100
MAX_REPLICA_CAPACITY_RPS = 1_000_000.0  # req/s one replica serves: well above any pod, finite in every forecast
MAX_LEAD_MINUTES = 24 * 60  # a plan's hours repeat daily: a longer lead gives every hour the day's peak
# Any replica count a policy holds (minimum, maximum, ceiling, emergency minimum): only PostgreSQL's integer
# bounded them, and a maximum (or a minimum) of 2,147,483,647 went to the cluster as the HPA's, which would
# create pods until the quota or the nodes ran out. Far above any one service (a cluster's documented limits
# are 5,000 nodes and 150,000 pods in all); the ceiling (100 by default) is the bound to tune.
MAX_REPLICAS_LIMIT = 10_000


def finite(value) -> None:
    """NaN passes every MinValueValidator and MaxValueValidator (each comparison is False), and infinity the
    bounds it is not above: the form refuses both, a fixture, the shell or raw SQL did not, and the manifests
    then failed for every policy the checker passed over after it."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Must be a finite number.", code="finite")


DNS_LABEL = RegexValidator(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "A DNS label: lower case letters, digits, '-'.")


def _in_utc_years(moment: datetime) -> bool:
    """Whether a time is inside years 1-9999 in UTC, the years Python (and so psycopg) can read back."""
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return False
    return True


class ScalingPolicy(models.Model):
    """How one service scales on Kubernetes, seeded with the brief's values."""

    class VpaMode(models.TextChoices):
        OFF = "Off", "Off (recommendations only)"
        INITIAL = "Initial", "Initial (at pod creation)"
        RECREATE = "Recreate", "Recreate"
        AUTO = "Auto", "Auto"

    class HistorySource(models.TextChoices):
        METRICS = "metrics", "This control plane's metrics"
        PROMETHEUS = "prometheus", "Prometheus (PROMETHEUS_URL)"
        SYNTHETIC = "synthetic", "Synthetic hospital traffic (demo)"

    class ApplyState(models.TextChoices):
        NOT_CONFIGURED = "not_configured", "No cluster configured"
        PENDING = "pending", "Pending"
        APPLYING = "applying", "Applying"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"

    service = models.OneToOneField("services.Service", on_delete=models.CASCADE, related_name="scaling_policy")
    enabled = models.BooleanField(default=True)
    namespace = models.CharField(max_length=63, default="medical-ai", validators=[DNS_LABEL])
    image = models.CharField(
        max_length=300, blank=True, validators=[IMAGE_REFERENCE], help_text="Container image; empty: <slug>:latest."
    )
    container_port = models.PositiveIntegerField(
        default=8000, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    cpu_request = models.CharField(max_length=16, default="500m", validators=[QUANTITY])
    cpu_limit = models.CharField(max_length=16, default="2", validators=[QUANTITY])
    memory_request = models.CharField(max_length=16, default="512Mi", validators=[QUANTITY])
    memory_limit = models.CharField(max_length=16, default="2Gi", validators=[QUANTITY])

    min_replicas = models.PositiveIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)]
    )
    max_replicas = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)],
        help_text="At most 10,000 (any replica count here): far above any one service.",
    )  # fmt: skip
    max_replicas_ceiling = models.PositiveIntegerField(
        "ceiling for the optimizer's maximum", default=MAX_REPLICAS_CEILING, db_default=MAX_REPLICAS_CEILING,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)],
        help_text="The optimizer (optimize --apply, or its recommendation applied in admin) raises the maximum "
        "replicas at most to this, whatever the forecast asks; not below the maximum replicas (to go higher by "
        "hand, raise both).",
    )  # fmt: skip
    target_cpu_pct = models.PositiveIntegerField(
        "target CPU (%)", null=True, blank=True, default=70, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    target_memory_pct = models.PositiveIntegerField(
        "target memory (%)",
        null=True,
        blank=True,
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    target_rps_per_pod = models.FloatField(
        "target req/s per pod", null=True, blank=True,
        validators=[finite, MinValueValidator(0.01), MaxValueValidator(MAX_REPLICA_CAPACITY_RPS)],
        help_text="Scale on the pods' http_requests_per_second (Prometheus adapter) as well; at most 1,000,000 "
        "(as the capacity per replica): above it the autoscaler never scales on it.",
    )  # fmt: skip
    scale_up_percent = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)])
    scale_up_period_seconds = models.PositiveIntegerField(default=60)
    scale_up_stabilization_seconds = models.PositiveIntegerField(default=0)
    scale_down_percent = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    scale_down_period_seconds = models.PositiveIntegerField(default=300)
    scale_down_stabilization_seconds = models.PositiveIntegerField(default=300)
    pdb_max_unavailable = models.PositiveIntegerField(
        "PDB max unavailable", default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)]
    )
    vpa_mode = models.CharField("VPA mode", max_length=10, choices=VpaMode.choices, default=VpaMode.OFF)

    predictive = models.BooleanField(default=True, help_text="Forecast the load and plan replicas ahead of it.")
    keda_enabled = models.BooleanField(
        "KEDA",
        default=False,
        help_text="Emit a KEDA ScaledObject (with cron windows for forecast peaks) instead of a plain HPA.",
    )  # fmt: skip
    replica_capacity_rps = models.FloatField(
        "capacity per replica (req/s)", default=50.0,
        validators=[finite, MinValueValidator(0.01), MaxValueValidator(MAX_REPLICA_CAPACITY_RPS)],
        help_text="Used until a stress benchmark measures the knee (and the replicas it ran on are set below). At "
        "most 1,000,000 req/s: far above what one pod serves, and the forecasts' arithmetic stays finite (1e308 "
        "overflowed the synthetic history and every metric read as 'not enough history').",
    )  # fmt: skip
    stress_test_replicas = models.PositiveIntegerField(
        "replicas serving the stress benchmark", null=True, blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)],
        help_text="How many replicas served the service (autoscaling held) while its stress benchmark ran. The knee "
        "is what they served together: a replica's capacity is the knee divided by this. Empty: the knee is not "
        "used, the capacity per replica above is.",
    )  # fmt: skip
    target_utilization = models.FloatField(
        default=0.7, validators=[finite, MinValueValidator(0.05), MaxValueValidator(1.0)],
        help_text="Share of a replica's capacity planned to be used at the P90 forecast.",
    )  # fmt: skip
    lead_minutes = models.PositiveIntegerField(
        default=15, validators=[MaxValueValidator(MAX_LEAD_MINUTES)],
        help_text="Replicas are planned this far ahead of the load, at most a day (1440 min): the plan is hourly and "
        "repeats every day, so a longer lead would give every hour the whole day's peak.",
    )  # fmt: skip
    emergency_mode = models.BooleanField(
        default=False,
        help_text="In force: lifts the minimum to the emergency minimum. On while set by hand or while the alert "
        "rule fires.",
    )
    emergency_manual = models.BooleanField(
        "emergency mode by hand",
        default=False,
        help_text="Set by hand (admin actions or here): keeps emergency mode on whatever the alert rule does.",
    )
    emergency_until = models.DateTimeField(
        "emergency mode by hand until",
        null=True,
        blank=True,
        help_text="The hand's setting ends then (the checker switches it off within a minute); empty: when "
        "switched off. A mode left on after the emergency keeps paying for its replicas.",
    )
    emergency_min_replicas = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS_LIMIT)]
    )
    emergency_alert_rule = models.ForeignKey(
        "metrics.AlertRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="While this alert fires, emergency mode is on.",
    )  # fmt: skip
    history_source = models.CharField(max_length=12, choices=HistorySource.choices, default=HistorySource.METRICS)
    prometheus_selector = models.CharField(
        max_length=200, blank=True, help_text='Label selector for Prometheus queries, e.g. service="clinical-api".'
    )

    forecast_skipped = models.JSONField(
        default=dict, blank=True, help_text="Why the last refresh made no forecast of a metric: {metric: reason}."
    )
    apply_state = models.CharField(max_length=16, choices=ApplyState.choices, default=ApplyState.NOT_CONFIGURED)
    apply_attempts = models.PositiveIntegerField(default=0)
    apply_error = models.TextField(blank=True)
    desired_hash = models.CharField(max_length=64, blank=True, help_text="Digest of the manifests last generated.")
    applied_hash = models.CharField(max_length=64, blank=True, help_text="Digest of the manifests on the cluster.")
    applied_objects = models.JSONField(
        default=list, blank=True, help_text="The objects last applied: those the manifests drop are removed."
    )
    apply_generation = models.PositiveBigIntegerField(
        default=0,
        db_default=0,  # the last release's pods insert policies without it while the upgrade rolls out
        help_text="Counts the applies and withdrawals started; each apply stamps its objects with its own, and a "
        "withdrawal removes none a later apply stamped.",
    )
    state_changed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "scaling policies"
        ordering = ["service__name"]

    def __str__(self) -> str:
        return f"Scaling of {self.service}"

    @property
    def name(self) -> str:
        """The name of the service's objects on the cluster."""
        from apps.scaling.manifests import kubernetes_name

        return kubernetes_name(self.service.slug)

    @property
    def floor_replicas(self) -> int:
        """The minimum in force: lifted in emergency mode."""
        return max(self.min_replicas, self.emergency_min_replicas) if self.emergency_mode else self.min_replicas

    def clean(self) -> None:
        errors = {}
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            errors["min_replicas"] = "The minimum cannot be above the maximum."
        if self.emergency_min_replicas and self.max_replicas and self.emergency_min_replicas > self.max_replicas:
            errors["emergency_min_replicas"] = "The emergency minimum cannot be above the maximum."
        if self.max_replicas_ceiling and self.max_replicas and self.max_replicas_ceiling < self.max_replicas:
            # The ceiling bounds what the optimizer may raise the maximum to: below the maximum it means nothing.
            errors["max_replicas_ceiling"] = "The ceiling cannot be below the maximum replicas."
        # A budget letting as many pods go as the minimum keeps runs no pod through a node drain: the service
        # goes down during routine maintenance. (One replica cannot be protected without blocking drains.)
        minimum = self.min_replicas or 0
        if minimum > 1 and (self.pdb_max_unavailable or 0) >= minimum:
            errors["pdb_max_unavailable"] = (
                f"Must be below the minimum of {minimum} replicas, or a node drain may evict every pod at once."
            )
        for field in ("scale_up_period_seconds", "scale_down_period_seconds"):
            if not 1 <= (getattr(self, field) or 0) <= 1800:
                errors[field] = "Kubernetes accepts 1 to 1800 seconds."
        for field in ("scale_up_stabilization_seconds", "scale_down_stabilization_seconds"):
            if (getattr(self, field) or 0) > 3600:
                errors[field] = "Kubernetes accepts 0 to 3600 seconds."
        if self.emergency_until and not self.emergency_manual:
            errors["emergency_until"] = "An end applies to emergency mode set by hand: set it on, or clear the end."
        elif self.emergency_until and not _in_utc_years(self.emergency_until):
            # 9999-12-31 23:59 behind UTC is year 10000 in UTC: PostgreSQL stores it, and every read of the
            # policy then failed (its page, the dashboard, the checker's pass over every policy).
            errors["emergency_until"] = "Out of range once in UTC: choose an earlier end (or none: until switched off)."
        if not (self.target_cpu_pct or self.target_memory_pct or self.target_rps_per_pod):
            errors["target_cpu_pct"] = "Scale on at least one metric: CPU, memory or requests per pod."
        if self.prometheus_selector and not PROMETHEUS_SELECTOR.fullmatch(self.prometheus_selector):
            errors["prometheus_selector"] = 'Label matchers only, e.g. service="clinical-api", namespace=~"medical-.*".'
        errors |= self._resource_errors()
        if errors:
            raise ValidationError(errors)

    def _resource_errors(self) -> dict[str, str]:
        """The API server refuses a request above its limit, and a zero request means no share of the node
        for the scheduler: refused here rather than at apply time. Unreadable quantities are QUANTITY's."""
        errors = {}
        for resource in ("cpu", "memory"):
            request_field, limit_field = f"{resource}_request", f"{resource}_limit"
            request, limit = quantity_value(getattr(self, request_field)), quantity_value(getattr(self, limit_field))
            for field, value in ((request_field, request), (limit_field, limit)):
                if value is not None and value <= 0:
                    errors[field] = "Must be above 0."
            if request and limit and request > limit:
                errors[request_field] = (
                    f"The request ({getattr(self, request_field)}) is above the limit "
                    f"({getattr(self, limit_field)}): Kubernetes refuses it."
                )
        return errors


class WorkloadForecast(models.Model):
    """A 24 h forecast of one metric of one service, with the backtest that chose its model."""

    class Metric(models.TextChoices):
        REQUEST_RATE = "request_rate", "Request rate (req/s)"
        CPU = "cpu", "CPU (%)"
        MEMORY = "memory", "Memory (%)"
        RESPONSE_TIME = "response_time", "Response time p95 (ms)"

    service = models.ForeignKey("services.Service", on_delete=models.CASCADE, related_name="forecasts")
    metric = models.CharField(max_length=16, choices=Metric.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=12, choices=ScalingPolicy.HistorySource.choices)
    history_hours = models.PositiveIntegerField()
    model = models.CharField(max_length=32, help_text="The model the backtest chose.")
    scores = models.JSONField(default=dict, help_text="Backtest MASE (m=24, 168), sMAPE and band coverage per model.")
    points = models.JSONField(default=list, help_text="[{at, p10, p50, p90}] per hour ahead.")
    recent = models.JSONField(default=list, help_text="[{at, value}]: the last days of history, for the chart.")
    patterns = models.JSONField(default=dict, help_text="Periods found and the named peaks.")
    hour = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="The hour the scheduled run made it for (empty: made by hand): one per service, metric and hour.",
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["service", "metric", "-created_at"], name="scaling_forecast_latest")]
        constraints = [
            # Two beat pods (an evicted one's replacement beside it for a while) each sent the hourly run: the
            # second made every forecast and plan again. The database keeps one, whatever the timing.
            models.UniqueConstraint(fields=["service", "metric", "hour"], name="scaling_forecast_one_per_hour")
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.metric} forecast {self.created_at:%Y-%m-%d %H:%M}"


class ScalingRecommendation(models.Model):
    """Replicas per hour for the next day, from the request-rate forecast, with the reasons."""

    service = models.ForeignKey("services.Service", on_delete=models.CASCADE, related_name="scaling_recommendations")
    forecast = models.ForeignKey(WorkloadForecast, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    hours = models.JSONField(default=list, help_text="[{at, replicas, p90_rps}] per hour ahead.")
    peak_replicas = models.PositiveIntegerField()
    min_replicas = models.PositiveIntegerField()
    emergency = models.BooleanField(default=False)
    reasons = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.service}: {self.min_replicas}-{self.peak_replicas} replicas ({self.created_at:%Y-%m-%d %H:%M})"

    def is_stale(self, now: datetime | None = None) -> bool:
        """Older than the day it planned: no forecast has replaced it since (forecasts are hourly), and as the
        newest plan its KEDA cron windows go on repeating that day's hours every day."""
        return (now or timezone.now()) - self.created_at >= PLAN_STALE_AFTER


# A plan covers the 24 hours after its forecast: past them it plans no hour ahead any more.
PLAN_STALE_AFTER = timedelta(hours=24)
