"""Self-contained HTML reports (inline SVG, no scripts): one per run, one per plan's history."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 720, 200, 40


def _line_svg(points: list[tuple[float, float]], *, colour: str, label: str, marker: float | None = None) -> SafeString:
    if len(points) < 2:
        return mark_safe("")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = min(xs), max(xs) or 1
    y_high = max([*ys, marker or 0]) or 1

    def x(value: float) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * (value - x_low) / ((x_high - x_low) or 1), 1)

    def y(value: float) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / y_high, 1)

    line = " ".join(f"{x(a)},{y(b)}" for a, b in points)
    gate = (
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(marker)}" y2="{y(marker)}" stroke="#cf222e" '
        'stroke-dasharray="4 3"></line>'
        if marker
        else ""
    )
    return mark_safe(  # noqa: S308 (numbers only)
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}">'
        f'<text x="4" y="{PAD - 8}" font-size="10">{y_high:,.1f}</text><text x="4" y="{HEIGHT - PAD}" font-size="10">0'
        f'</text>{gate}<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.6"></polyline>'
        f'<text x="{PAD}" y="{HEIGHT - 10}" font-size="10">{label}</text></svg>'
    )


def _bars_svg(buckets: list[list[float]], label: str) -> SafeString:
    if not buckets:
        return mark_safe("")
    peak = max(count for _, count in buckets) or 1
    width = (WIDTH - 2 * PAD) / len(buckets)
    bars = "".join(
        f'<rect x="{round(PAD + i * width, 1)}" y="{round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * count / peak, 1)}" '
        f'width="{round(width - 1, 1)}" height="{round((HEIGHT - 2 * PAD) * count / peak, 1)}" fill="#0a58ca">'
        f"<title>up to {upper} ms: {count}</title></rect>"
        for i, (upper, count) in enumerate(buckets)
    )
    ends = f'<text x="{PAD}" y="{HEIGHT - PAD + 14}" font-size="10">{buckets[0][0]} ms</text>' + (
        f'<text x="{WIDTH - PAD - 60}" y="{HEIGHT - PAD + 14}" font-size="10">{buckets[-1][0]} ms</text>'
    )
    return mark_safe(  # noqa: S308 (numbers only)
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}">{bars}{ends}'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{label}</text></svg>'
    )


def render_run_report(run) -> str:
    timeline = run.timeline
    gates = run.plan.gates()
    return render_to_string(
        "benchmarks/run_report.html",
        {
            "run": run,
            "plan": run.plan,
            "gates": gates,
            "rps_chart": _line_svg([(p["t"], p["rps"]) for p in timeline], colour="#1a7f37", label="req/s per second"),
            "p95_chart": _line_svg(
                [(p["t"], p["p95_ms"]) for p in timeline if p["p95_ms"] is not None],
                colour="#0a58ca",
                label="p95 (ms, rolling 10 s), dashed: the gate",
                marker=gates["p95_ms"],
            ),
            "histogram_chart": _bars_svg(run.histogram, "latency histogram (log-spaced buckets)"),
        },
    )


def render_plan_report(plan) -> str:
    runs = list(plan.runs.filter(status="succeeded").order_by("created_at"))
    return render_to_string(
        "benchmarks/plan_report.html",
        {
            "plan": plan,
            "runs": runs,
            "regressions": plan.regressions.select_related("run"),
            "history_chart": _line_svg(
                [(index, run.summary.get("p95_ms") or 0) for index, run in enumerate(runs)],
                colour="#0a58ca",
                label="p95 per run (ms), dashed: the gate",
                marker=plan.gates()["p95_ms"],
            ),
        },
    )
