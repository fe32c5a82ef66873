"""Running optimizations and recording them. Admin, commands and (later) Celery tasks call these."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.selectors import database_pool_stats
from apps.optimizer import database
from apps.optimizer.models import OptimizationRun

BAR_COLOURS = ("#0a58ca", "#1a7f37")


def _bar_chart(rows: list[dict], value_keys: tuple[str, ...]) -> dict:
    """Geometry of an inline SVG bar chart: the report must open offline, without scripts."""
    peak = max((row.get(key) or 0 for row in rows for key in value_keys), default=0) or 1
    bars, y = [], 4
    for row in rows:
        for position, key in enumerate(value_keys):
            value = row.get(key)
            width = round(360 * (value or 0) / peak, 1)
            bars.append(
                {
                    "label": row["pattern"] if position == 0 else "",
                    "y": y,
                    "width": width,
                    "colour": BAR_COLOURS[position],
                    "text": "-" if value is None else f"{value} ms",
                    "text_x": 236 + width,
                }
            )
            y += 18
        y += 6
    return {"bars": bars, "height": y + 4}


def database_optimization_run(
    *, apply: bool = False, progress: Callable[[str], None] = lambda _: None
) -> OptimizationRun:
    """Measure every query pattern, recommend indexes, apply them if asked, and measure again."""
    run = OptimizationRun.objects.create(target=OptimizationRun.Target.DATABASE, apply=apply)
    try:
        before = database.explain_patterns(progress)
        findings = {
            "vendor": connection.vendor,
            "patterns": before,
            "missing_indexes": database.missing_indexes(),
            "index_usage": database.index_usage(),
            "table_scans": database.table_scans(),
            "slow_statements": database.slow_statements(),
            "pool": database_pool_stats(),
        }
        recommendations = database.recommendations_for(findings)
        applied = database.apply_recommendations(recommendations, progress) if apply else []
        if applied:
            after = {row["pattern"]: row for row in database.explain_patterns(progress)}
            for row in before:
                row["execution_ms_after"] = after[row["pattern"]].get("execution_ms")
                row["indexes_used_after"] = after[row["pattern"]]["indexes_used"]
        run.findings, run.recommendations, run.applied = findings, recommendations, applied
        run.status = OptimizationRun.Status.SUCCEEDED
    except Exception as exc:
        run.status, run.error = OptimizationRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.finished_at = timezone.now()
        run.report_html = render_report(run)
        run.save()
    return run


def render_report(run: OptimizationRun) -> str:
    patterns = [p for p in run.findings.get("patterns", []) if "execution_ms" in p]
    keys = ("execution_ms", "execution_ms_after") if run.applied else ("execution_ms",)
    return render_to_string(
        "optimizer/database_report.html",
        {"run": run, "findings": run.findings, "chart": _bar_chart(patterns, keys) if patterns else None},
    )
