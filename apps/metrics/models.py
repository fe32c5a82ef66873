"""Per-minute request rollups: counts, errors and latency percentiles per route template, mergeable."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models
from django.utils import timezone

from apps.core.link_local import refuse_link_local_url


class RequestRollup(models.Model):
    """One minute of one route template, method, status class and client app, from every process.

    The HDR histogram is kept (compressed), so rollups from many processes merge exactly and a
    percentile over any range is computed from merged histograms, never averaged from percentiles.
    """

    class Resolution(models.TextChoices):
        MINUTE = "1m", "1 minute"
        HOUR = "1h", "1 hour"

    resolution = models.CharField(max_length=2, choices=Resolution.choices, default=Resolution.MINUTE)
    minute = models.DateTimeField(help_text="Start of the minute (or hour) the row covers.")
    route = models.CharField(max_length=200, help_text="The URL pattern, never the raw path.")
    method = models.CharField(max_length=8)
    status_class = models.CharField(max_length=3)
    client = models.CharField(max_length=120)
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    max_ms = models.FloatField(default=0.0)
    p50_ms = models.FloatField(default=0.0)
    p95_ms = models.FloatField(default=0.0)
    p99_ms = models.FloatField(default=0.0)
    histogram = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "minute", "route", "method", "status_class", "client"], name="rollup_key"
            )
        ]
        indexes = [models.Index(fields=["minute"]), models.Index(fields=["route", "minute"])]

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} {self.method} {self.route} {self.status_class}"


class MetricPoint(models.Model):
    """A gauge or counter series (host CPU, a cache namespace's reads) at one resolution.

    `sum` and `count` are kept rather than a mean, so downsampling (raw -> 1 minute -> 1 hour) keeps
    totals exact: a counter's total is its sum, a gauge's mean is sum / count.
    """

    class Resolution(models.TextChoices):
        RAW = "raw", "as sampled"
        MINUTE = "1m", "1 minute"
        HOUR = "1h", "1 hour"

    series = models.CharField(max_length=120, help_text="e.g. host.cpu_pct, cache.patient_data.requests")
    resolution = models.CharField(max_length=3, choices=Resolution.choices, default=Resolution.RAW)
    at = models.DateTimeField()
    sum = models.FloatField()
    count = models.PositiveIntegerField(default=1)
    min = models.FloatField()
    max = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["series", "resolution", "at"]),
            # Retention's "anything at this resolution older than the cutoff?", answered without a scan.
            models.Index(fields=["resolution", "at"], name="metricpoint_resolution_at"),
        ]

    def __str__(self) -> str:
        return f"{self.series}@{self.at:%Y-%m-%d %H:%M} ({self.resolution})"

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0


PERCENT_METRICS = frozenset({"error_rate_pct", "cpu_pct", "memory_pct", "cache_hit_rate_pct"})


def metric_bounds(metric: str) -> tuple[float, float]:
    """The values the metric can take: a percentage 0 to 100, anything else never negative."""
    return (0.0, 100.0) if metric in PERCENT_METRICS else (0.0, math.inf)


def threshold_problem(metric: str, operator: str, threshold: float) -> str | None:
    """A threshold the metric can never cross: the rule then never fires (CPU above 150%, a hit rate below 0)
    or always does (a p95 above -1 ms), and nothing says so until the emergency it was meant to catch."""
    if not math.isfinite(threshold):
        return "A finite number."
    low, high = metric_bounds(metric)
    if not low <= threshold <= high:
        return f"This metric is {'a percentage, 0 to 100' if high == 100 else 'never negative'}."
    if operator == "gt" and threshold == high:
        return "The metric can never be above 100%: the rule would never fire."
    if operator == "lt" and threshold == low:
        return "The metric can never be below 0: the rule would never fire."
    return None


class AlertRule(models.Model):
    """A threshold on a metric, held for a while before it fires; resolved with hysteresis."""

    class Metric(models.TextChoices):
        P95_MS = "p95_ms", "p95 response time (ms)"
        ERROR_RATE_PCT = "error_rate_pct", "error rate (%)"
        CPU_PCT = "cpu_pct", "host CPU (%)"
        MEMORY_PCT = "memory_pct", "host memory (%)"
        CACHE_HIT_RATE_PCT = "cache_hit_rate_pct", "cache hit rate (%)"
        BENCHMARK_REGRESSIONS = "benchmark_regressions", "unacknowledged benchmark regressions"
        INFERENCE_LOAD_FAILURES = "inference_load_failures", "failed inference model loads in the window"

    class Operator(models.TextChoices):
        ABOVE = "gt", "above"
        BELOW = "lt", "below"

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    name = models.CharField(max_length=120, unique=True)
    enabled = models.BooleanField(default=True)
    metric = models.CharField(max_length=24, choices=Metric.choices)
    operator = models.CharField(max_length=2, choices=Operator.choices, default=Operator.ABOVE)
    threshold = models.FloatField()
    service = models.ForeignKey(
        "services.Service", null=True, blank=True, on_delete=models.CASCADE, help_text="Empty: every route."
    )
    cache_namespace = models.CharField(max_length=64, blank=True, help_text="Cache hit rate: one namespace, or all.")
    # Up to a week: the value is about recent traffic, and `now - window` always stays a date.
    window_minutes = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="The value is computed over this window (1 minute to 7 days).",
    )  # fmt: skip
    for_seconds = models.PositiveIntegerField(
        default=120, validators=[MaxValueValidator(7 * 24 * 3600)], help_text="Breaching this long before it fires."
    )
    hysteresis_pct = models.FloatField(
        default=10.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        help_text="Resolves only this far (in %) past the threshold.",
    )  # fmt: skip
    min_requests = models.PositiveIntegerField(
        default=20,
        help_text="Request metrics need this many requests in the window; the cache hit rate this many reads, "
        "and never fewer than the caching optimizer's minimum (200).",
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    webhook_url = models.URLField(blank=True, validators=[refuse_link_local_url])
    email_to = models.CharField(max_length=400, blank=True, help_text="Comma-separated addresses.")
    pending_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The first evaluation of the current run without a value: a firing alert is resolved once it lasts a window.
    no_data_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_value = models.FloatField(null=True, blank=True, editable=False)
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The last evaluation's failure, kept until one succeeds: a rule that cannot be evaluated never fires.
    last_error = models.CharField(max_length=300, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """NaN passes the range validators (it compares False to any bound) and never breaches; a bad address
        would fail only when the alert fires. Here, not in the admin form, so every form and service that
        validates a rule refuses the same things."""
        errors = {}
        for name in ("threshold", "hysteresis_pct"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                errors[name] = "A finite number."
        if "threshold" not in errors and self.threshold is not None and self.metric and self.operator:
            problem = threshold_problem(self.metric, self.operator, float(self.threshold))
            if problem:
                errors["threshold"] = problem
        namespace_problem = self._cache_namespace_problem()
        if namespace_problem:
            errors["cache_namespace"] = namespace_problem
        bad = []
        for address in filter(None, (part.strip() for part in (self.email_to or "").split(","))):
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            errors["email_to"] = f"Not an email address: {', '.join(bad)}. Separate addresses with commas."
        if errors:
            raise ValidationError(errors)

    def _cache_namespace_problem(self) -> str | None:
        """A namespace no policy names has no reads: the rule would say "no data" forever, a typo unnoticed."""
        from apps.caching.models import CachePolicy

        self.cache_namespace = (self.cache_namespace or "").strip()
        if not self.cache_namespace or CachePolicy.objects.filter(namespace=self.cache_namespace).exists():
            return None
        known = ", ".join(CachePolicy.objects.values_list("namespace", flat=True))
        return f"No cache namespace is called {self.cache_namespace!r}: one of {known}, or empty for all."

    def breaches(self, value: float) -> bool:
        return value > self.threshold if self.operator == self.Operator.ABOVE else value < self.threshold

    def recovered(self, value: float) -> bool:
        """Back past the threshold by the hysteresis band. Without a band (0%, or a threshold of 0: "any
        regression") a value no longer breaching has recovered: `value < threshold - 0` was never true of one
        at the threshold, so "more than 0 regressions" fired for good. A band reaching past the metric's
        bounds (a hit rate below 95% with 10%: above 104.5%; an error rate above 5% with 100%: below 0%) is
        cut to half the room between the threshold and that bound, so a value the metric takes resolves it."""
        low, high = metric_bounds(self.metric)
        margin = abs(self.threshold) * self.hysteresis_pct / 100
        if self.operator == self.Operator.ABOVE:
            if self.threshold - margin <= low:
                margin = max(self.threshold - low, 0.0) / 2
            return value <= self.threshold if margin <= 0 else value < self.threshold - margin
        if self.threshold + margin >= high:
            margin = max(high - self.threshold, 0.0) / 2
        return value >= self.threshold if margin <= 0 else value > self.threshold + margin


class Alert(models.Model):
    """What fired, when, and (its notifications) who was told: a record an incident review reads, kept when its
    rule or the rule's service is deleted (the rule's link set to empty). What the rule was when the alert
    fired (its name, severity, metric, operator, threshold, service) is kept on the alert itself: deleted or
    edited, the rule no longer says what paged whom last Tuesday at 03:00."""

    class State(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    # Empty once the rule is deleted (or its service): the alert and its deliveries stay, read by the snapshot.
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    # The rule as it was when the alert fired (snapshot_take): filled on save, and for older alerts on its delete.
    # db_default: the last release's pods insert alerts without them while an upgrade rolls out.
    rule_name = models.CharField(max_length=120, blank=True, default="", db_default="")
    rule_severity = models.CharField(max_length=10, blank=True, default="", db_default="")
    rule_metric = models.CharField(max_length=24, blank=True, default="", db_default="")
    rule_operator = models.CharField(max_length=2, blank=True, default="", db_default="")
    rule_threshold = models.FloatField(null=True, blank=True)
    service_name = models.CharField(
        max_length=120, blank=True, default="", db_default="", help_text="Empty: a rule of no service."
    )
    # The service's id, not a link: the service deleted, its alerts stay its own, hidden from whoever did not
    # see it (selectors.alerts_visible), never turned into alerts of no service that every role reads.
    service_pk = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.FIRING)
    # The evaluation's time (services._fire: the database's clock, as resolved_at is), not the worker's own:
    # auto_now_add took the worker's, and a worker an hour ahead stored alerts resolved before they started.
    started_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(help_text="The value when it fired.")
    last_value = models.FloatField()
    message = models.CharField(max_length=300)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"], condition=models.Q(state="firing"), name="one_firing_alert_per_rule"
            )
        ]
        # The alerts still without their rule's snapshot (services.alert_snapshots_fill, each evaluation): an
        # index of those alone, empty but for an upgrade's window, instead of a scan of every alert each minute.
        indexes = [
            models.Index(fields=["rule"], condition=models.Q(rule_name=""), name="alert_snapshot_missing"),
            # The newest first (the admin's list, /api/v1/metrics/alerts/, the dashboard): read from the index's
            # end, not a sort of every alert ever fired for each page.
            models.Index(fields=["-started_at", "-id"], name="alert_started"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_name or (self.rule.name if self.rule_id else '?')} ({self.state})"

    def save(self, *args, **kwargs) -> None:
        if self.rule_id is not None and not self.rule_name:  # an alert made without its snapshot (code, tests)
            self.snapshot_take(self.rule)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], *ALERT_SNAPSHOT_FIELDS}
        super().save(*args, **kwargs)

    def snapshot_take(self, rule: AlertRule) -> None:
        for name, value in alert_snapshot(rule).items():
            setattr(self, name, value)


ALERT_SNAPSHOT_FIELDS = ("rule_name", "rule_severity", "rule_metric", "rule_operator", "rule_threshold",
                         "service_name", "service_pk")  # fmt: skip


def alert_snapshot(rule: AlertRule) -> dict:
    """What an alert keeps of its rule (Alert.snapshot_take; the same fields as a queryset's update)."""
    service = rule.service if rule.service_id else None
    return {
        "rule_name": rule.name,
        "rule_severity": rule.severity,
        "rule_metric": rule.metric,
        "rule_operator": rule.operator,
        "rule_threshold": rule.threshold,
        "service_name": service.name if service else "",
        "service_pk": rule.service_id,
    }


class AlertNotification(models.Model):
    """One delivery of an alert's "firing" or "resolved" on one channel, delivered or not: a deleted rule's
    "resolved" (tasks.deleted_alert_resolution_send) is recorded on the alert kept, each try its own row."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10)
    channel = models.CharField(max_length=10)
    target = models.CharField(max_length=400)
    delivered = models.BooleanField(default=False)
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event} via {self.channel}: {'ok' if self.delivered else 'failed'}"
