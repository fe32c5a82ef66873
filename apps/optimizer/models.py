from __future__ import annotations

from django.db import models


class OptimizationRun(models.Model):
    """One `optimize` invocation: what was measured, what it recommends, what it applied."""

    class Target(models.TextChoices):
        DATABASE = "database", "Database"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    target = models.CharField(max_length=16, choices=Target.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    apply = models.BooleanField(default=False, help_text="Whether recommendations were applied.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    findings = models.JSONField(default=dict)
    recommendations = models.JSONField(default=list)
    applied = models.JSONField(default=list)
    error = models.TextField(blank=True)
    report_html = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["target", "-started_at"], name="optimizer_run_target")]

    def __str__(self) -> str:
        return f"{self.get_target_display()} optimization #{self.pk} ({self.status})"
