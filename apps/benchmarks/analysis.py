"""What a run's samples and Locust's CSVs say: percentiles, an HDR histogram, the timeline, verdicts per
gate, the stress knee, spike recovery, the endurance slope, and regressions across a plan's runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from hdrh.histogram import HdrHistogram

from apps.metrics.recorder import percentile_values

if TYPE_CHECKING:
    import numpy as np

# numpy is imported in the functions that use it, not here: the web and worker processes import this module
# (services, runner) at start-up, and numpy cost them 70-220 ms each before serving anything (STYLE 7).

# Latencies from 1 µs to 10 min at 3 significant digits, recorded in µs.
LOWEST_US, HIGHEST_US, DIGITS = 1, 600_000_000, 3
PERCENTILES = (50, 90, 95, 99)


def _float(value: str) -> float | None:
    """A number of Locust's CSVs; "N/A", "nan" or "inf" (no requests yet) are none: PostgreSQL's json
    refuses NaN, and the run's results would not save."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_aggregate(row: dict) -> bool:
    """Locust's aggregate row: named "Aggregated" with no method. A plan's request may be named "Aggregated"
    too (its rows have a method): by name alone it was dropped from the endpoints, and its history rows
    were read as the aggregate's, two points a second in the run's timeline."""
    return row.get("Name") == "Aggregated" and not row.get("Type")


def parse_stats(path: Path) -> list[dict]:
    """Locust's *_stats.csv: one row per endpoint, then the aggregate (`"aggregate": True`). A row Locust
    could not finish writing (killed on a stop that outlasted its grace) is left out, not a failed run."""
    rows = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            try:
                requests, failures = int(row["Request Count"]), int(row["Failure Count"])
            except (TypeError, ValueError):
                continue
            rows.append(
                {
                    "name": row["Name"],
                    "method": row["Type"],
                    "aggregate": _is_aggregate(row),
                    "requests": requests,
                    "failures": failures,
                    "rps": round(_float(row["Requests/s"]) or 0.0, 3),
                    "avg_ms": round(_float(row["Average Response Time"]) or 0.0, 3),
                    **{f"p{p}_ms": _float(row.get(f"{p}%")) for p in PERCENTILES},
                    "max_ms": _float(row.get("Max Response Time")),
                }
            )
    return rows


def parse_history(path: Path) -> list[dict]:
    """Locust's *_stats_history.csv, aggregate rows: per second, users, req/s, errors/s. Its p95 (Locust's
    rolling one, failures included) is replaced by the runner with successes_p95 of our own samples."""
    timeline, first = [], None
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not _is_aggregate(row):
                continue
            try:
                at, users = int(row["Timestamp"]), int(row["User Count"])
            except (TypeError, ValueError):  # the last line, cut short
                continue
            first = at if first is None else first
            timeline.append(
                {
                    "t": at - first,
                    "users": users,
                    "rps": round(_float(row["Requests/s"]) or 0.0, 3),
                    "errors_per_s": round(_float(row["Failures/s"]) or 0.0, 3),
                    "p95_ms": _float(row.get("95%")),
                }
            )
    return timeline


def successes_p95(timeline: list[dict], samples: list[list]) -> list[dict]:
    """The timeline with each point's p95 that of the successful requests answered in the second up to it
    (None where none was): Locust's "95%" counts failures, and a run of nothing but fast 503s plotted a
    latency over time while its summary said it had none. A point's `t` is seconds since the test's start,
    as the samples' start times are."""
    import numpy as np

    successes = sorted(((s[0] + s[1] / 1000, s[1]) for s in samples if s[3]), key=lambda pair: pair[0])
    ends = np.fromiter((end for end, _ in successes), dtype=float, count=len(successes))
    by_end = np.fromiter((latency for _, latency in successes), dtype=float, count=len(successes))
    points = []
    for point in timeline:
        low, high = np.searchsorted(ends, [point["t"] - 1, point["t"]], side="right")
        window = by_end[low:high]
        p95 = round(float(np.percentile(window, 95)), 3) if len(window) else None
        points.append({**point, "p95_ms": p95})
    return points


TIMELINE_MAX_POINTS = 1500


def timeline_served(timeline: list[dict], max_points: int = TIMELINE_MAX_POINTS) -> tuple[list[dict], int]:
    """The timeline as the API and the report serve it, at most `max_points` points, and each point's width
    in seconds: a day's endurance run stored 86,400 points a second apart, megabytes of JSON a chart could
    hardly draw. Consecutive seconds merge into buckets of `step`: req/s and errors/s averaged, users the
    most of the bucket, p95 the highest of its seconds' p95s (the samples behind them are not kept; None
    where none had one). `t` is the bucket's first second. Shorter timelines are served as stored."""
    if len(timeline) <= max_points:
        return timeline, 1
    step = math.ceil(len(timeline) / max_points)
    points = []
    for start in range(0, len(timeline), step):
        bucket = timeline[start : start + step]
        p95s = [p["p95_ms"] for p in bucket if p.get("p95_ms") is not None]
        points.append(
            {
                "t": bucket[0]["t"],
                "users": max(p.get("users") or 0 for p in bucket),
                "rps": round(sum(p.get("rps") or 0.0 for p in bucket) / len(bucket), 6),
                "errors_per_s": round(sum(p.get("errors_per_s") or 0.0 for p in bucket) / len(bucket), 6),
                "p95_ms": max(p95s) if p95s else None,
            }
        )
    return points, step


def histogram_of(latencies_ms: list[float]) -> HdrHistogram:
    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    _record(histogram, latencies_ms)
    return histogram


def _record(histogram: HdrHistogram, latencies_ms: list[float]) -> None:
    """Recorded value by value with its count: a day's run holds millions of samples, far fewer values."""
    import numpy as np

    values_us = np.clip((np.asarray(latencies_ms, dtype=float) * 1000).astype(np.int64), LOWEST_US, HIGHEST_US)
    for value, count in zip(*np.unique(values_us, return_counts=True), strict=True):
        histogram.record_value(int(value), int(count))


class Totals:
    """What a run's summary needs of every sample, exactly, however many there are: the counts, the load's
    length and HDR histograms of the successful requests' latencies. Fed one sample at a time while the
    samples files are read (a day at 1,000 req/s is 86 million samples, tens of GB as a list), and folded
    into the histograms in batches."""

    BATCH = 65_536

    def __init__(self) -> None:
        self.requests = self.errors = 0
        self.by_name: dict[str, list[int]] = {}  # request name: [requests, errors], of every sample
        self._last_answer = -math.inf
        self.latency = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.intended = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self._pending: tuple[list[float], list[float]] = ([], [])

    @classmethod
    def of(cls, samples: list[list]) -> Totals:
        totals = cls()
        for sample in samples:
            totals.add(sample)
        return totals.done()

    def add(self, sample: list) -> None:
        started, latency_ms, intended_ms, ok = sample[:4]
        self.requests += 1
        self._last_answer = max(self._last_answer, started + latency_ms / 1000)
        counts = self.by_name.setdefault(sample[4], [0, 0]) if len(sample) > 4 else None
        if counts is not None:
            counts[0] += 1
        if not ok:
            self.errors += 1
            if counts is not None:
                counts[1] += 1
            return
        self._pending[0].append(latency_ms)
        self._pending[1].append(intended_ms)
        if len(self._pending[0]) >= self.BATCH:
            self.done()

    @property
    def load_seconds(self) -> float:
        """How long the load ran: from the test's start (samples are timed from it) to the last answer. Not
        the runner's wall time, which adds Locust's start-up and shutdown (seconds of a 5 s run on a busy
        machine)."""
        return self._last_answer if self.requests else 0.0

    def done(self) -> Totals:
        """Fold the samples still pending into the histograms."""
        for histogram, pending in zip((self.latency, self.intended), self._pending, strict=True):
            _record(histogram, pending)
            pending.clear()
        return self


def _in_time_order(samples: list[list]) -> tuple[list[list], np.ndarray]:
    """The samples by start time, and those times: a window is then a slice (np.searchsorted), not a scan
    of every sample per window, which took hours for the windows of a day-long run."""
    import numpy as np

    ordered = sorted(samples, key=lambda sample: sample[0])
    return ordered, np.fromiter((sample[0] for sample in ordered), dtype=float, count=len(ordered))


def _window(ordered: list[list], times: np.ndarray, start: float, end: float) -> list[list]:
    """The samples started in [start, end)."""
    import numpy as np

    low, high = np.searchsorted(times, [start, end])
    return ordered[low:high]


def summarize(samples: list[list], totals: Totals | None = None) -> dict:
    """Counts, errors, req/s (every request) and exact percentiles (HDR) of the service's and the
    intended-time latency of the successful requests. With failures in them, a service answering most
    requests with a fast 503 read as fast: 96% 1 ms failures made 900 ms answers a p95 of 1 ms, inside
    its gate. With no successful request there is no latency (and its gates fail).

    `totals` are those of every sample when `samples` is the runner's bounded random share of them: the
    figures are still of every request, and `sampled` says how many the analyses on samples had."""
    totals = Totals.of(samples) if totals is None else totals
    if not totals.requests:
        return {"requests": 0, "errors": 0, "error_rate_pct": 0.0, "rps": 0.0}
    seconds, errors = totals.load_seconds, totals.errors
    counts = {
        "requests": totals.requests,
        "errors": errors,
        "error_rate_pct": round(100 * errors / totals.requests, 3),
        "rps": round(totals.requests / seconds, 3) if seconds else 0.0,
    }
    if totals.requests > len(samples):
        counts["sampled"] = {"kept": len(samples), "of": totals.requests}
    if errors == totals.requests:
        return counts
    latency, intended = totals.latency, totals.intended
    return {
        **counts,
        "avg_ms": round(latency.get_mean_value() / 1000, 3),
        **{f"p{p}_ms": value / 1000 for p, value in percentile_values(latency, PERCENTILES).items()},
        "max_ms": latency.get_max_value() / 1000,
        **{f"p{p}_from_intended_ms": value / 1000 for p, value in percentile_values(intended, (50, 95, 99)).items()},
    }


def endpoint_rows(samples: list[list], totals: Totals, methods: dict[str, str]) -> list[dict]:
    """The report's endpoints table from our own samples, as the summary is: counts of every request of each
    name (totals), latencies of its successful ones only (the samples kept). Locust's stats CSV mixed its
    failures' latencies in, so an endpoint answering fast 503s read fast. `methods`: the mix's method(s)
    of each name, in the mix's order, which the rows follow."""
    latencies: dict[str, list[float]] = {}
    for sample in samples:
        if sample[3]:
            latencies.setdefault(sample[4], []).append(sample[1])
    seconds = totals.load_seconds
    names = [name for name in methods if name in totals.by_name]
    names += sorted(name for name in totals.by_name if name not in methods)
    rows = []
    for name in names:
        requests, failures = totals.by_name[name]
        row = {
            "name": name,
            "method": methods.get(name, ""),
            "requests": requests,
            "failures": failures,
            "rps": round(requests / seconds, 3) if seconds else 0.0,
            "avg_ms": None,
            **{f"p{p}_ms": None for p in PERCENTILES},
            "max_ms": None,
        }
        if latencies.get(name):
            histogram = histogram_of(latencies[name])
            row["avg_ms"] = round(histogram.get_mean_value() / 1000, 3)
            row.update({f"p{p}_ms": value / 1000 for p, value in percentile_values(histogram, PERCENTILES).items()})
            row["max_ms"] = histogram.get_max_value() / 1000
        rows.append(row)
    return rows


def histogram_buckets(samples: list[list], buckets: int = 40) -> list[list[float]]:
    """Log-spaced [upper ms, count] buckets of the successful requests' latencies (as the summary's
    percentiles), for the report's chart."""
    import numpy as np

    latencies = np.asarray([max(s[1], 0.001) for s in samples if s[3]])
    if not len(latencies):
        return []
    low, high = latencies.min(), max(latencies.max(), latencies.min() * 1.01)
    counts, edges = np.histogram(latencies, bins=np.geomspace(low, high, buckets + 1))
    return [[round(float(edge), 3), int(count)] for edge, count in zip(edges[1:], counts, strict=True)]


def verdicts(summary: dict, gates: dict[str, float]) -> list[dict]:
    checks = [
        ("p95_ms", summary.get("p95_ms"), gates["p95_ms"], False),
        ("p99_ms", summary.get("p99_ms"), gates["p99_ms"], False),
        ("avg_ms", summary.get("avg_ms"), gates["avg_ms"], False),
        ("error_rate_pct", summary.get("error_rate_pct"), gates["error_rate_pct"], False),
        ("min_rps", summary.get("rps"), gates["min_rps"], True),
    ]
    return [
        {
            "gate": name,
            "measured": measured,
            "limit": limit,
            "passed": measured is not None and (measured >= limit if at_least else measured <= limit),
        }
        for name, measured, limit, at_least in checks
    ]


# The live gate (locustfile_template.Stages) reads Locust's current figures: its last 10 s.
GATE_WINDOW_SECONDS = 10.0


def stress_knee(samples: list[list], stages: list[list], gates: dict[str, float], *, scale: float = 1.0) -> dict:
    """Per step: users, req/s, p95, errors; the knee is the highest req/s of a step inside the gates, among
    the steps before the first that broke them (past it the service is beyond its knee, whatever a later
    step's p95 says).

    A step is judged only when it ran at least half its length with MIN_SAMPLES requests, and its req/s is
    its requests over the time it ran: a step the gate cut off a moment after it began had a few requests a
    few milliseconds apart, read as hundreds of req/s, and the scaling planner took that as a replica's
    capacity. It is judged as the live gate judged it, by its last GATE_WINDOW_SECONDS: over the whole step,
    a cold start's errors in the first one broke it after the gate had let the test step on, and the knee
    was lost.

    `scale` is how many requests each sample stands for when `samples` is a random share of the run's."""
    steps, start = [], 0.0
    ordered, times = _in_time_order(samples)
    load_end = float(times[-1]) if len(times) else 0.0
    for until, users, _ in stages:
        window = _window(ordered, times, start, until)
        ran = min(until, load_end) - start
        length, start = until - start, until
        if not window:
            continue
        latency = histogram_of([s[1] for s in window])
        errors = 100 * sum(1 for s in window if not s[3]) / len(window)
        step_end = start - length + ran
        tail = _window(ordered, times, max(start - length, step_end - GATE_WINDOW_SECONDS), step_end) or window
        steps.append(
            {
                "users": users,
                "rps": round(len(window) * scale / max(ran, 1e-3), 2),
                "p95_ms": latency.get_value_at_percentile(95) / 1000,
                "error_rate_pct": round(errors, 3),
                "gate_p95_ms": histogram_of([s[1] for s in tail]).get_value_at_percentile(95) / 1000,
                "gate_error_rate_pct": round(100 * sum(1 for s in tail if not s[3]) / len(tail), 3),
                "judged": len(window) >= MIN_SAMPLES and ran >= length / 2,
            }
        )
    knee = None
    for step in steps:
        if not step["judged"]:
            continue
        if step["gate_p95_ms"] > gates["p95_ms"] or step["gate_error_rate_pct"] > gates["error_rate_pct"]:
            break
        if knee is None or step["rps"] > knee["rps"]:
            knee = step
    return {"steps": steps, "knee_rps": knee["rps"] if knee else None, "knee_users": knee["users"] if knee else None}


def spike_recovery(samples: list[list], stages: list[list]) -> dict:
    """Seconds after the spike ends until a second's p95 of the successful requests (as the summary) is back
    within 1.2x the pre-spike p95 and its error rate back near the pre-spike rate. Latency alone read a
    service shedding the spike with fast 503s as recovered: of all answers, a spike p95 of 1 ms; of the
    successes, "recovered" while it still refused 97% of requests and served the rest at its usual speed."""
    import numpy as np

    if len(stages) < 3:
        return {}
    spike_start, spike_end = stages[0][0], stages[1][0]
    before_all = [s for s in samples if s[0] < spike_start]
    before = [s[1] for s in before_all if s[3]]
    during = [s[1] for s in samples if spike_start <= s[0] < spike_end and s[3]]
    if not before or not during:
        return {}
    baseline = float(np.percentile(before, 95))
    baseline_errors = 1 - len(before) / len(before_all)
    # A share, compared as counts (1 failure in 100 is 0.010000000000000009 as `1 - 99/100`: past 0.01).
    tolerated_errors = max(2 * baseline_errors, baseline_errors + 0.01) + 1e-9
    recovered_at = None
    ordered, times = _in_time_order(samples)
    for second in range(int(spike_end), int(times[-1]) + 1):
        window = _window(ordered, times, second, second + 1)
        served = [s[1] for s in window if s[3]]
        back_to_errors = served and len(window) - len(served) <= tolerated_errors * len(window)
        if back_to_errors and float(np.percentile(served, 95)) <= 1.2 * baseline:
            recovered_at = second
            break
    return {
        "baseline_p95_ms": round(baseline, 3),
        "baseline_error_rate_pct": round(100 * baseline_errors, 3),
        "spike_p95_ms": round(float(np.percentile(during, 95)), 3),
        "recovery_seconds": round(recovered_at - spike_end, 1) if recovered_at is not None else None,
    }


def endurance_slope(samples: list[list], window_seconds: int = 30) -> dict:
    """The trend of the windowed p95 of the successful requests over the run (ms per hour), with its
    significance."""
    import numpy as np

    samples = [s for s in samples if s[3]]
    if not samples:
        return {}
    ordered, times = _in_time_order(samples)
    points = []
    for start in np.arange(0, times[-1], window_seconds):
        window = [s[1] for s in _window(ordered, times, start, start + window_seconds)]
        if len(window) >= 10:
            points.append((start + window_seconds / 2, float(np.percentile(window, 95))))
    if len(points) < 3:
        return {"windows": len(points)}
    return {"windows": len(points), **_trend(points, "p95_slope_ms_per_hour")}


def memory_slope(points: list[tuple[float, float]]) -> dict:
    """The trend of the target's memory (% per hour) over the run, from (seconds, percent) samples."""
    if len(points) < 3:
        return {"samples": len(points)}
    return {"samples": len(points), **_trend(points, "memory_slope_pct_per_hour")}


def _trend(points: list[tuple[float, float]], name: str) -> dict:
    """The least-squares slope per hour of (seconds, value) points, with its p-value. A flat series is no
    trend at all: linregress gives it a NaN p-value, which PostgreSQL's json refuses, and the run's results
    did not save (it stayed running until the checker failed it as if its worker had died)."""
    from scipy.stats import linregress

    if len({value for _, value in points}) < 2:
        return {name: 0.0, "p_value": 1.0, "significant": False}
    fit = linregress([p[0] for p in points], [p[1] for p in points])
    return {
        name: round(fit.slope * 3600, 3),
        "p_value": round(float(fit.pvalue), 6),
        "significant": bool(fit.pvalue < 0.01),
    }


# --- regressions across runs -------------------------------------------------------------------------


# The p95 history's noise is never taken below this share of its level: a history of equal values (a
# target answering in a fixed time, p95s rounded alike) has no spread, and every later wobble was a change.
MIN_SIGMA_SHARE = 0.01


def change_points(series: list[float], *, penalty: float | None = None) -> list[int]:
    """Indexes where the p95 history shifts (ruptures' PELT on a normal cost; penalty ~ 2 log n sigma^2).

    A segment may be one run long: the run just recorded is the newest point, and with segments of two or
    more a change at it could never be found (a threefold p95 at the last run was no change point)."""
    import numpy as np
    import ruptures

    if len(series) < 4:
        return []
    values = np.asarray(series, dtype=float).reshape(-1, 1)
    sigma = float(np.median(np.abs(np.diff(values[:, 0]))) / 0.6745 / math.sqrt(2))
    sigma = max(sigma, MIN_SIGMA_SHARE * float(np.median(np.abs(values[:, 0]))), 1e-9)
    penalty = penalty if penalty is not None else 2 * math.log(len(series)) * sigma**2 * 4
    breaks = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(values).predict(pen=penalty)
    return [index for index in breaks if index < len(series)]


# Fewer successful requests than this on either side is no verdict: one slow request against thousands
# has p = 0.0002 and "changed" by its own latency.
MIN_SAMPLES = 30


def compare_with_baseline(current: list[float], baseline: list[float], *, threshold_pct: float) -> dict:
    """One-sided Mann-Whitney U (current slower) and the median change; a regression needs both, and at
    least MIN_SAMPLES samples on each side."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    base_median, current_median = float(np.median(baseline)), float(np.median(current))
    change = 100 * (current_median / base_median - 1) if base_median else 0.0
    p_value = float(mannwhitneyu(current, baseline, alternative="greater").pvalue)
    return {
        "baseline": round(base_median, 3),
        "current": round(current_median, 3),
        "change_pct": round(change, 2),
        "p_value": p_value,
        "threshold_pct": round(threshold_pct, 2),
        "samples": len(current),
        "regression": p_value < 0.01 and change >= threshold_pct and min(len(current), len(baseline)) >= MIN_SAMPLES,
    }


def noise_pct(run_medians: list[float]) -> float:
    """A/A noise: how much the median of runs with nothing changed differs, as 2x their relative spread."""
    import numpy as np

    if len(run_medians) < 2:
        return 0.0
    values = np.asarray(run_medians, dtype=float)
    return float(200 * np.std(values, ddof=1) / np.mean(values)) if np.mean(values) else 0.0
