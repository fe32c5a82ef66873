"""Rate-limit policies per API scope (edited in admin), the record of every adaptive change and of every admin
edit of a limit."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

# A tightening is load shedding the controller must keep confirming: once it has read no load signal for this
# long (Celery's beat or workers stopped, the resource monitor too), the configured limit is in force again.
# Nothing else would ever lift it, and a halved limit on a clinical API must not outlive its evidence.
TIGHTENING_LAPSES_AFTER = timedelta(minutes=15)
MAX_REQUESTS_PER_PERIOD = 10_000
MAX_PERIOD_SECONDS = 86_400
MAX_STORED_INTEGER = 2_147_483_647  # PostgreSQL's integer, the column of a PositiveIntegerField


class RateLimitPolicy(models.Model):
    """At most `requests` per `period_seconds` per client token, in any sliding window (exact, in Redis)."""

    scope = models.SlugField(max_length=64, unique=True, help_text="Views name it in `throttle_scope`.")
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    # The exact limiter keeps one Redis entry (~130 bytes) per admitted request for the whole period, per client
    # and scope: 1,000,000 a day was ~130 MB of the cache's Redis for one busy client.
    requests = models.PositiveIntegerField(
        validators=[
            MinValueValidator(1),
            MaxValueValidator(
                MAX_REQUESTS_PER_PERIOD,
                message="At most %(limit_value)s per period (each is kept in Redis for the period, per client): "
                "for a higher rate, shorten the period.",
            ),
        ],
        help_text=f"Per client token, at most {MAX_REQUESTS_PER_PERIOD} per period.",
    )
    period_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(MAX_PERIOD_SECONDS)]
    )
    burst_per_second = models.PositiveIntegerField(  # 0 would read as empty (no cap), not "no requests"
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Optional: also at most this many in any one second (absorbs spikes).",
    )
    fail_open = models.BooleanField(
        default=True, help_text="When Redis is unreachable: on, requests pass; off, they are refused (503)."
    )
    priority = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(5)], help_text="1 is the most important."
    )
    adaptive = models.BooleanField(default=False, help_text="Tighten under load (CPU or the service's p95).")
    tighten_factor = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.05), MaxValueValidator(0.95)],
        help_text="Each tightening step multiplies the limit by this.",
    )
    min_factor = models.FloatField(default=0.1, validators=[MinValueValidator(0.01), MaxValueValidator(1)])
    current_factor = models.FloatField(default=1.0, editable=False)
    last_step_at = models.DateTimeField(
        null=True, editable=False, help_text="The adaptive controller's last step; the next one waits a signal window."
    )
    signal_read_at = models.DateTimeField(
        null=True,
        editable=False,
        help_text="The adaptive controller last read a load signal for it; a tightening lapses "
        f"{TIGHTENING_LAPSES_AFTER.seconds // 60} minutes after.",
    )
    service = models.ForeignKey(
        "services.Service", null=True, blank=True, on_delete=models.SET_NULL, help_text="Whose p95 is watched."
    )
    cpu_threshold_pct = models.FloatField(default=70.0, validators=[MinValueValidator(1), MaxValueValidator(100)])
    p95_threshold_ms = models.PositiveIntegerField(  # 0 would read as empty: "use the SLO"
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: the service's own p95 SLO target."
    )
    recover_below = models.FloatField(
        default=0.8,
        validators=[MinValueValidator(0.1), MaxValueValidator(0.99)],
        help_text="Hysteresis: recover only once the signal is below this fraction of its threshold.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "scope"]
        verbose_name_plural = "rate limit policies"

    def __str__(self) -> str:
        return f"{self.scope}: {self.effective_requests}/{self.period_seconds}s"

    @property
    def effective_requests(self) -> int:
        return self.requests_in_force()

    def requests_in_force(self, now: datetime | None = None) -> int:
        """The configured limit times the adaptive factor, unless the tightening has lapsed. `now`: the database's
        clock where the caller read it (the controller stamps its readings with it), else this host's."""
        factor = 1.0 if self.tightening_lapsed(now) else self.current_factor
        # At most the column's largest value: a form's value past it, refused by full_clean but left on the
        # instance, overflowed a float here and the change form's re-render (its title is str(self)) was a 500.
        requests = min(self.requests, MAX_STORED_INTEGER)
        # Rounded before the floor: 100 x 0.57 is 56.99999999999999 in binary, and the limit is 57.
        return max(1, int(round(requests * factor, 6)))

    def tightening_lapsed(self, now: datetime | None = None) -> bool:
        """Tightened, but with no load signal read for TIGHTENING_LAPSES_AFTER: no longer in force."""
        if self.current_factor >= 1.0:
            return False
        return self.signal_read_at is None or self.signal_read_at <= (now or timezone.now()) - TIGHTENING_LAPSES_AFTER

    def tightening_lapses_at(self, now: datetime | None = None) -> datetime | None:
        """When the tightening in force lapses unless the controller reads a signal first; None when there is none
        in force (not tightened, or already lapsed)."""
        if self.current_factor >= 1.0 or self.tightening_lapsed(now):
            return None
        return self.signal_read_at + TIGHTENING_LAPSES_AFTER

    def clean(self) -> None:
        """Cross-field checks. A field the form could not read is None here: its own error already says why."""
        errors = {}
        if self.min_factor is not None and not 0 < self.min_factor <= 1:
            errors["min_factor"] = "Between 0 and 1."
        if self.burst_per_second and self.requests is not None and self.burst_per_second > self.requests:
            errors["burst_per_second"] = "A per-second burst cap above the whole limit never acts."
        if self.adaptive and self.priority == 1:
            errors["adaptive"] = "Priority-1 scopes are never shed: lower the priority (2 or more) to make it adaptive."
        # The controller reads a p95 only of the service named: without one, the threshold never fires.
        if self.adaptive and self.p95_threshold_ms is not None and self.service_id is None:
            errors["service"] = "A p95 threshold watches a service's p95: choose the service, or empty the threshold."
        if errors:
            raise ValidationError(errors)


class RateLimitAdjustment(models.Model):
    """One adaptive change of a policy's factor, with the signal that caused it."""

    class Direction(models.TextChoices):
        TIGHTEN = "tighten"
        RECOVER = "recover"

    policy = models.ForeignKey(RateLimitPolicy, on_delete=models.CASCADE, related_name="adjustments")
    # Stamped by the database on insert (and returned by it), as `last_step_at` and the admin edits' rows are: the
    # overview reads each step against the request rollups' minutes, on the database's clock. The worker's clock
    # two hours behind put a tightening before the minutes it limited (a 30/min client read as 15/min's 133%).
    at = models.DateTimeField(db_default=Now(), db_index=True)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    old_factor = models.FloatField()
    new_factor = models.FloatField()
    reason = models.CharField(max_length=200)
    cpu_pct = models.FloatField(null=True)
    p95_ms = models.FloatField(null=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.policy.scope} {self.direction} {self.old_factor:g}->{self.new_factor:g}"


class RateLimitLimitChange(models.Model):
    """One admin edit of a policy's configured limit (`requests` or `period_seconds`): the overview reads each past
    minute's usage against the limit in force then, not against today's."""

    policy = models.ForeignKey(RateLimitPolicy, on_delete=models.CASCADE, related_name="limit_changes")
    # Stamped by the database on insert (and returned by it): on its clock, as the request rollups' minutes the
    # overview reads it against are. This host's clock a minute or more off put the edit in the wrong minute.
    at = models.DateTimeField(db_default=Now(), db_index=True)
    old_requests = models.PositiveIntegerField()
    new_requests = models.PositiveIntegerField()
    old_period_seconds = models.PositiveIntegerField()
    new_period_seconds = models.PositiveIntegerField()

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return (
            f"{self.policy.scope} {self.old_requests}/{self.old_period_seconds}s"
            f"->{self.new_requests}/{self.new_period_seconds}s"
        )


class RateLimitHit(models.Model):
    """The embedded (no Redis) limiter's sliding-window log; SQLite serializes writers, so it stays exact."""

    key = models.CharField(max_length=120)
    at_ms = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["key", "at_ms"])]

    def __str__(self) -> str:
        return f"{self.key}@{self.at_ms}"
