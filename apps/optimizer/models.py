from __future__ import annotations

from django.conf import settings
from django.db import models


class OptimizationRun(models.Model):
    """One `optimize` invocation (by an admin or a schedule): its steps, targets and verdicts."""

    class Target(models.TextChoices):
        ALL = "all", "All"
        DATABASE = "database", "Database"
        CACHING = "caching", "Caching"
        MODEL = "model", "Model"
        SCALING = "scaling", "Scaling"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    target = models.CharField(max_length=16, choices=Target.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    apply = models.BooleanField(default=False, help_text="Whether recommendations were applied.")
    service = models.ForeignKey(
        "services.Service", null=True, blank=True, on_delete=models.SET_NULL, help_text="Only this service's figures."
    )
    subject = models.CharField(max_length=120, blank=True, help_text="One thing to optimize: a model deployment.")
    response_time_ms = models.FloatField(null=True, blank=True, help_text="Target p95 response time.")
    cache_hit_rate = models.FloatField(null=True, blank=True, help_text="Target cache hit rate (0-1).")
    requested_by = models.CharField(max_length=150, blank=True, help_text="Who or what started the run.")
    inline = models.BooleanField(default=False, help_text="Ran in the caller's process instead of on a worker.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verdicts = models.JSONField(default=list, help_text="Each target against what was measured.")
    targets_met = models.BooleanField(null=True, help_text="Empty while running, or when nothing was measured.")
    error = models.TextField(blank=True)
    report_html = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["target", "-started_at"], name="optimizer_run_target"),
            models.Index(fields=["status", "started_at"], name="optimizer_run_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_target_display()} optimization #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class OptimizationStep(models.Model):
    """One optimizer's part of a run; a Celery task (or the caller) executes it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(OptimizationRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=16, choices=OptimizationRun.Target.choices)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="More than one: a worker was lost mid-step.")
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    progress_message = models.CharField(max_length=200, blank=True)
    findings = models.JSONField(default=dict)
    applied = models.JSONField(default=list)
    verdicts = models.JSONField(default=list)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When what follows it on the chain was sent; a redelivery sends it no more."
    )
    # The attempt that owns a running step, and its last sign of life (database time): a second delivery of the
    # step (acks late: redelivered while its first worker still runs) waits for a live owner instead of measuring
    # beside it. Nullable, no default: an older release's worker writes neither and its steps behave as before.
    attempt_token = models.UUIDField(null=True, blank=True, editable=False, help_text="The attempt running it.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last refreshed by the attempt running it; stale: its worker was lost."
    )

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="optimizer_step_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.SKIPPED, self.Status.FAILED)


class Recommendation(models.Model):
    """A change an optimizer proposes, with its evidence; applied or dismissed by an admin or `--apply`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        # Claimed by one apply, committed before its change is made: a second apply at the same moment (two
        # admins, a double click, `optimize --apply` beside the admin) finds it taken and makes nothing.
        APPLYING = "applying", "Applying"
        APPLIED = "applied", "Applied"
        DISMISSED = "dismissed", "Dismissed"
        FAILED = "failed", "Failed to apply"
        SUPERSEDED = "superseded", "Superseded by a later run"

    run = models.ForeignKey(OptimizationRun, on_delete=models.CASCADE, related_name="recommendations")
    step = models.CharField(max_length=16, choices=OptimizationRun.Target.choices)
    kind = models.CharField(max_length=40)
    subject = models.CharField(max_length=120, help_text="What it changes: an index, a cache namespace ...")
    title = models.CharField(max_length=200)
    reason = models.TextField()
    change = models.JSONField(default=dict, help_text="What applying it does, in the step's own terms.")
    evidence = models.JSONField(default=dict, help_text="The measurements behind it.")
    actionable = models.BooleanField(default=True, help_text="Off: advice for people, nothing to apply.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_via = models.CharField(max_length=40, blank=True, help_text="admin, `optimize --apply`, ...")
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.JSONField(default=dict, help_text="What was changed, the values before, and what followed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "step"], name="optimizer_rec_status")]

    def __str__(self) -> str:
        return self.title
