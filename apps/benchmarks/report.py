"""Self-contained HTML reports (inline SVG, no scripts): one per run, one per plan's history."""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.benchmarks import analysis
from apps.core import svg


def _histogram_svg(buckets: list[list[float]]):
    last = len(buckets) - 1
    bars = [
        (count, f"up to {upper} ms: {count}", f"{upper} ms" if index in (0, last) else "")
        for index, (upper, count) in enumerate(buckets)
    ]
    return svg.columns(bars, colour="#0a58ca", label="latency histogram (log-spaced buckets)")


# Under this, a run's latency trend is given as the change over the run: a slope fitted over a minute and
# extrapolated to an hour ("-540.525 ms per hour") is a change the run never saw.
HOURLY_SLOPE_MIN_SECONDS = 3600


def _trend(run) -> str | None:
    """The p95 trend in the run's own terms: per hour over a run of an hour or more, else the change over it."""
    endurance = run.findings.get("endurance") or {}
    per_hour = endurance.get("p95_slope_ms_per_hour")
    if per_hour is None:
        return None
    significance = f"p = {endurance.get('p_value')}{', significant' if endurance.get('significant') else ''}"
    rps, requests = run.summary.get("rps"), run.summary.get("requests")
    seconds = requests / rps if rps and requests else None  # the load's own length (summary's req/s is over it)
    if seconds is None or seconds >= HOURLY_SLOPE_MIN_SECONDS:
        return f"p95 slope {per_hour} ms per hour ({significance})."
    return f"p95 trend {round(per_hour * seconds / 3600, 3):+} ms over the run's {seconds:.0f} s ({significance})."


def _labels(step: int) -> tuple[str, str]:
    """The charts' labels for points `step` seconds wide (a long run's seconds merged, see timeline_served)."""
    if step == 1:
        return "req/s per second", "p95 of each second's successful requests (ms), dashed: the gate"
    return (
        f"req/s, averaged per {step} s",
        f"p95 of successful requests, the highest second's of each {step} s (ms), dashed: the gate",
    )


def render_run_report(run) -> str:
    timeline, step = analysis.timeline_served(run.timeline)  # a day's run: 1,500 points, not 86,400
    rps_label, p95_label = _labels(step)
    gates = run.plan.gates()
    return render_to_string(
        "benchmarks/run_report.html",
        {
            "run": run,
            "plan": run.plan,
            "trend": _trend(run),
            "gates": gates,
            "rps_chart": svg.line([(p["t"], p["rps"]) for p in timeline], colour="#1a7f37", label=rps_label),
            "p95_chart": svg.line(
                [(p["t"], p["p95_ms"]) for p in timeline if p["p95_ms"] is not None],
                colour="#0a58ca",
                label=p95_label,
                marker=gates["p95_ms"],
            ),
            "histogram_chart": _histogram_svg(run.histogram),
        },
    )


def render_plan_report(plan) -> str:
    # What the page shows of each run, no more: every run's stored report and samples (a year of nightly
    # runs) were read to draw a table, and each regression read its run's the same way.
    runs = list(
        plan.runs.filter(status="succeeded")
        .order_by("created_at")
        .only("pk", "plan", "created_at", "summary", "passed")
    )
    return render_to_string(
        "benchmarks/plan_report.html",
        {
            "plan": plan,
            "runs": runs,
            "regressions": plan.regressions.all(),
            "history_chart": svg.line(
                # A run with no successful request has no latency: a gap, not the fastest run at 0 ms.
                [
                    (index, run.summary["p95_ms"])
                    for index, run in enumerate(runs)
                    if run.summary.get("p95_ms") is not None
                ],
                colour="#0a58ca",
                label="p95 per run (ms), dashed: the gate",
                marker=plan.gates()["p95_ms"],
            ),
        },
    )
