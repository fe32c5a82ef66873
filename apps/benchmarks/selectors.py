"""Reads other apps use: a service's measured capacity, recent regressions."""

from __future__ import annotations

from apps.benchmarks.models import BenchmarkRun, Regression


def service_knee_rps(service) -> float | None:
    """The knee (highest req/s inside the gates) of the service's last successful stress run."""
    run = (
        BenchmarkRun.objects.filter(plan__service=service, plan__kind="stress", status=BenchmarkRun.Status.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )
    return (run.findings.get("stress") or {}).get("knee_rps") if run else None


def recent_regressions(*, limit: int = 10) -> list[str]:
    return [
        f"{r.plan.name}: latency +{r.change_pct:.1f}% in run #{r.run_id} ({r.detected_at:%Y-%m-%d})"
        + ("" if r.acknowledged_at is None else ", acknowledged")
        for r in Regression.objects.select_related("plan")[:limit]
    ]
