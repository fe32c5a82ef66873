"""Reads other apps use: a service's measured capacity, recent regressions."""

from __future__ import annotations

from django.db.models import F

from apps.benchmarks import analysis
from apps.benchmarks.models import BenchmarkRun, Regression
from apps.services.selectors import of_visible_services

# A run's heavy columns: its report and what only its own page draws.
RUN_DETAIL_FIELDS = ("report_html", "findings", "histogram", "timeline", "endpoints", "verdicts")


def service_knee_rps(service) -> float | None:
    """The knee (highest req/s inside the gates) of the service's last successful stress run, as that run
    recorded it. A stress run is one whose findings hold a knee, not one whose plan is a stress plan now: a
    plan edited from stress to load hid its measured knee, and one edited the other way offered its load
    runs' (none) in place of the knee an earlier stress run measured."""
    run = (
        BenchmarkRun.objects.filter(
            plan__service=service, status=BenchmarkRun.Status.SUCCEEDED, findings__has_key="stress"
        )
        .order_by("-created_at")
        .only("pk", "findings")
        .first()
    )
    return (run.findings.get("stress") or {}).get("knee_rps") if run else None


def latest_finished_run(plan) -> BenchmarkRun | None:
    """The plan's run that finished last, never one still pending or running: a run queued or under way has
    no verdict yet, and judging it failed a CI gate that the finished run before it had met."""
    finished = plan.runs.exclude(status__in=[BenchmarkRun.Status.PENDING, BenchmarkRun.Status.RUNNING])
    return finished.order_by(F("finished_at").desc(nulls_last=True), "-created_at", "-pk").first()


def recent_regressions(*, limit: int = 10, visible_services: frozenset[int] | None = None) -> list[str]:
    regressions = of_visible_services(Regression.objects.select_related("plan"), visible_services, "plan__service")
    return [
        f"{r.plan.name}: latency +{r.change_pct:.1f}% in run #{r.run_id} ({r.detected_at:%Y-%m-%d})"
        + ("" if r.acknowledged_at is None else ", acknowledged")
        for r in regressions[:limit]
    ]


def _regression_json(regression: Regression) -> dict:
    return {
        "id": regression.pk, "run": regression.run_id, "plan": regression.plan.name, "metric": regression.metric,
        "baseline": regression.baseline, "current": regression.current, "change_pct": regression.change_pct,
        "p_value": regression.p_value, "threshold_pct": regression.threshold_pct,
        "change_point": regression.change_point, "detected_at": regression.detected_at.isoformat(),
        "acknowledged": regression.acknowledged_at is not None,
    }  # fmt: skip


def _run_json(run: BenchmarkRun) -> dict:
    return {
        "id": run.pk, "plan": run.plan.name, "plan_id": run.plan_id, "kind": run.plan.kind,
        "service": run.plan.service.slug, "status": run.status, "passed": run.passed,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "progress": run.progress, "progress_message": run.progress_message, "summary": run.summary,
        "regressions": [_regression_json(r) for r in run.regressions.all()],
    }  # fmt: skip


def benchmark_runs(
    *, plan_id: int | None = None, limit: int = 50, visible_services: frozenset[int] | None = None
) -> list[dict]:
    """The latest runs (newest first), with their summary and any regression they showed. Without the
    columns the list never shows: up to 500 runs each read its stored report, its samples (findings) and its
    timeline, megabytes per page."""
    runs = BenchmarkRun.objects.defer(*RUN_DETAIL_FIELDS).select_related("plan__service")
    runs = runs.prefetch_related("regressions__plan")
    runs = of_visible_services(runs, visible_services, "plan__service")
    if plan_id is not None:
        runs = runs.filter(plan_id=plan_id)
    return [_run_json(run) for run in runs.order_by("-created_at")[:limit]]


def benchmark_run_detail(run_id: int, *, visible_services: frozenset[int] | None = None) -> dict | None:
    """One run as the dashboard draws it: latency over time, the histogram, verdicts and findings."""
    runs = BenchmarkRun.objects.select_related("plan__service").prefetch_related("regressions__plan")
    run = of_visible_services(runs, visible_services, "plan__service").filter(pk=run_id).first()
    if run is None:
        return None
    timeline, step = analysis.timeline_served(run.timeline)  # a day's run: 1,500 points, not 86,400
    return {
        **_run_json(run), "endpoints": run.endpoints, "timeline": timeline, "timeline_step_s": step,
        "histogram": run.histogram,
        "findings": run.findings, "verdicts": run.verdicts, "error": run.error,
        "generator_cpu_max": run.generator_cpu_max, "report_url": f"/benchmarks/runs/{run.pk}/report/",
    }  # fmt: skip


def scopes_missing_to_repoint(*, service, user) -> list[str]:
    """The scopes of the service's benchmark plans that `user` does not hold. A run sends its token, with its
    plan's scopes (PHI ones included), to the service's base URL: a user who could change that URL without
    holding the scopes (an Operator) could point an administrator's plan, and its token, at a listener of their
    own on another port of an allowed host. Empty: the user may change it."""
    from apps.accounts.models import scope_permission_codename
    from apps.benchmarks.models import BenchmarkPlan

    if service is None or service.pk is None:
        return []
    scopes = {
        scope
        for plan_scopes in BenchmarkPlan.objects.filter(service=service).values_list("scopes", flat=True)
        if isinstance(plan_scopes, list)
        for scope in plan_scopes
        if isinstance(scope, str)
    }
    return sorted(s for s in scopes if not user.has_perm(f"accounts.{scope_permission_codename(s)}"))


def base_url_change_refusal(*, service, user, base_url) -> str | None:
    """Why `user` may not set the service's base URL to `base_url` (None: they may). `user` None is the
    product itself (seeding)."""
    if user is None or service is None or service.pk is None:
        return None
    stored = type(service).objects.filter(pk=service.pk).values_list("base_url", flat=True).first()
    if stored is None or stored == base_url:
        return None
    missing = scopes_missing_to_repoint(service=service, user=user)
    if missing:
        return (
            f"Its benchmark plans' runs send a token with scopes you do not hold ({', '.join(missing)}) to this "
            "URL: only a user holding them may change it."
        )
    return None
