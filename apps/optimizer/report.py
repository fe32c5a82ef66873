"""The self-contained HTML report of a run: opens offline, no scripts, charts as inline SVG."""

from __future__ import annotations

from django.template.loader import render_to_string

BEFORE, AFTER, TARGET = "#0a58ca", "#1a7f37", "#cf222e"
LABEL_WIDTH, BAR_WIDTH = 230, 360


def bar_chart(rows: list[tuple[str, list[tuple[float | None, str, str]]]], *, peak: float | None = None,
              marker: float | None = None) -> dict:  # fmt: skip
    """Geometry of a horizontal bar chart: per row a label and bars of (value, colour, text).

    `marker` draws a vertical line at a value (a target)."""
    values = [value or 0 for _, bars in rows for value, _, _ in bars]
    peak = peak or max([*values, marker or 0], default=0) or 1
    bars, y = [], 4
    for label, row_bars in rows:
        for position, (value, colour, text) in enumerate(row_bars):
            width = round(BAR_WIDTH * (value or 0) / peak, 1)
            bars.append({"label": label if position == 0 else "", "y": y, "width": width, "colour": colour,
                         "text": text, "text_x": LABEL_WIDTH + 6 + width})  # fmt: skip
            y += 18
        y += 6
    marker_x = round(LABEL_WIDTH + BAR_WIDTH * marker / peak, 1) if marker is not None else None
    return {"bars": bars, "height": y + 4, "marker_x": marker_x, "label_width": LABEL_WIDTH}


def _database_chart(findings: dict) -> dict | None:
    patterns = [p for p in findings.get("patterns", []) if p.get("wall_ms") is not None]
    if not patterns:
        return None
    rows = []
    for p in patterns:
        bars = [(p["wall_ms"], BEFORE, f"{p['wall_ms']} ms")]
        if p.get("wall_ms_after") is not None:
            bars.append((p["wall_ms_after"], AFTER, f"{p['wall_ms_after']} ms"))
        rows.append((p["pattern"], bars))
    return bar_chart(rows)


def _caching_chart(findings: dict) -> dict | None:
    measured = [n for n in findings.get("namespaces", []) if n["hit_rate"] is not None]
    if not measured:
        return None
    rows = [(n["namespace"], [(n["hit_rate"], BEFORE, f"{n['hit_rate']:.1%} of {n['reads']:,}")]) for n in measured]
    return bar_chart(rows, peak=1.0, marker=findings.get("target"))


def _scaling_charts(findings: dict) -> dict:
    from apps.scaling.optimizer import report_charts

    return report_charts(findings)


CHARTS = {"database": _database_chart, "caching": _caching_chart, "scaling": _scaling_charts}


def render_report(run, *, live_at=None) -> str:
    """The run's report. Stored at finalize (and written by --report) with the recommendations' status at
    that time, labelled so; served, it is rendered again with `live_at` (now): a recommendation applied or
    failed since shows as it is, where the stored copy still said Pending or Applying."""
    steps = []
    for step in run.steps.order_by("position"):
        chart = CHARTS.get(step.name)
        # A step that measured and then failed to apply keeps its findings: they are drawn too.
        measured = step.status == step.Status.SUCCEEDED or (step.status == step.Status.FAILED and step.findings)
        drawn = chart(step.findings) if chart and measured else None
        steps.append({"step": step, "findings": step.findings, "chart": drawn})
    return render_to_string(
        "optimizer/run_report.html",
        {
            "run": run,
            "steps": steps,
            "recommendations": run.recommendations.select_related("decided_by").order_by("step", "id"),
            "colours": {"before": BEFORE, "after": AFTER, "target": TARGET},
            "live_at": live_at,
        },
    )
