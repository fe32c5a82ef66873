"""Reads for the control-plane overview in admin."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps as django_apps
from django.conf import settings
from django.utils import timezone

from apps.metrics.selectors import alert_list, slo_status
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.services.selectors import of_visible_services, sees_all_traffic, services_visible_to, visible_service_ids


def control_plane_overview(user) -> dict:
    """Services with SLO status, the last run, pending recommendations, active alerts, recent regressions:
    of the services the user sees."""
    visible = visible_service_ids(user)
    # A run of no service covers every service (its verdicts, recommendations): only for who sees them all.
    every_service = sees_all_traffic(visible)
    services = []
    for service in services_visible_to(user).filter(is_active=True).order_by("name"):
        status = slo_status(service)["windows"]["1h"] if service.route_prefix else None
        services.append({"service": service, "last_hour": status})
    pending = of_visible_services(Recommendation.objects.filter(status=Recommendation.Status.PENDING),
                                  visible, "run__service", unassigned=every_service).select_related("run").defer(
                                  "run__report_html")  # fmt: skip
    regressions = None
    if django_apps.is_installed("apps.benchmarks"):
        from apps.benchmarks.selectors import recent_regressions

        regressions = recent_regressions(limit=10, visible_services=visible)
    return {
        "services": services,
        "last_run": of_visible_services(OptimizationRun.objects.defer("report_html"), visible, unassigned=every_service)
        .prefetch_related("steps")
        .first(),
        "pending_count": pending.count(),
        "pending": list(pending.order_by("-created_at")[:15]),
        "alerts": alert_list(state="firing", limit=20, visible_services=visible),
        "regressions": regressions,
    }


def database_scan_baseline(*, before: str, older_by: timedelta = timedelta(hours=1)) -> dict | None:
    """The scan counters the latest earlier database step stored at its end, with its run: what this run's
    scans are counted from. Only a step that started `older_by` or more before `before` (ISO): a run minutes
    after another measured minutes, and found every index unused in them. The unused-index advice asks for 20 h
    (UNUSED_INDEX_MIN_WINDOW_SECONDS): counted from the latest run, any run less than 20 h after another hid
    unused indexes for good. One from before a statistics reset is still returned (scan_window then counts from
    the reset: every run after the reset is then younger)."""
    latest = datetime.fromisoformat(before) - older_by
    step = (
        OptimizationStep.objects.filter(
            name=OptimizationRun.Target.DATABASE, findings__has_key="counters", started_at__lte=latest
        )
        .order_by("-started_at")
        .values("run_id", "findings__counters")
        .first()
    )
    return {"run": step["run_id"], "counters": step["findings__counters"]} if step else None


def recommendation_progress(recommendation: Recommendation) -> str:
    """Where an apply sent to a worker stands: waiting for a worker, the index build's phase and share done
    (pg_stat_progress_create_index), or its outcome."""
    from django.db import connection

    outcome = recommendation.outcome or {}
    if recommendation.status != Recommendation.Status.APPLYING:
        if recommendation.status == Recommendation.Status.FAILED:
            return f"failed: {outcome.get('error', '')}"[:300]
        return outcome.get("note", "") if recommendation.status == Recommendation.Status.APPLIED else ""
    if "queued_at" not in outcome:
        return f"being applied by {recommendation.decided_via or 'its claimer'}"
    if not outcome.get("attempts"):
        # How long, and what follows: a worker that never comes left it "waiting" for 2 h, then "lost".
        waited = (timezone.now() - datetime.fromisoformat(outcome["queued_at"])).total_seconds() // 60
        return (
            f"queued {outcome['queued_at'][:19].replace('T', ' ')} UTC: waiting for a worker for {waited:.0f} min; "
            f"failed, nothing changed, if none starts it within {settings.OPTIMIZER_RUN_DEADLINE_SECONDS // 60} min"
        )
    attempt = f" (attempt {outcome['attempts']}, resuming a lost worker's build)" if outcome["attempts"] > 1 else ""
    build = None
    if recommendation.kind == "create_index" and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total "
                "FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid "
                "WHERE c.relname = %s AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [recommendation.subject],
            )
            build = cursor.fetchone()
    if build is None:
        return f"applying on a worker since {outcome.get('started_at', '')[:19].replace('T', ' ')} UTC{attempt}"
    phase, blocks_done, blocks_total, tuples_done, tuples_total = build
    done = (
        f", {blocks_done / blocks_total:.0%} of {blocks_total:,} blocks" if blocks_total
        else f", {tuples_done / tuples_total:.0%} of {tuples_total:,} rows" if tuples_total else ""
    )  # fmt: skip
    return f"building: {phase}{done}{attempt}"
