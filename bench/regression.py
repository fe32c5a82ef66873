"""Regression detection, and the runner's own overhead.

1. Synthetic run histories under realistic noise: each run's latencies are lognormal (sigma 0.35) around
   a run median that itself moves a few percent between runs with nothing changed (A/A noise); a shift
   of 5%, 10% or 20% is injected at a random run. Our detector (apps/benchmarks/analysis.py: one-sided
   Mann-Whitney U against the previous five runs, p < 0.01, and a change above max(5%, the plan's A/A
   noise)) against a fixed 10% threshold on the p95 against the previous run. Printed per shift: recall
   (the shifted run flagged) and false positives per 100 unshifted runs, for both.
2. The runner's overhead: the same load (8 users, 15 s) against the same local endpoint (sleeps 10 ms)
   through our runner and through bare `locust`; the ratio of their p50 and req/s.

Run:  .venv/bin/python bench/regression.py [--histories 200]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emit, progress

# The detector and runner are plain functions, but their modules read settings when imported.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from apps.benchmarks import analysis, runner

RUNS, SAMPLES_PER_RUN, BASELINE_RUNS = 20, 400, 5
RUN_NOISE, SAMPLE_SIGMA = 0.03, 0.35


def history(rng: np.random.Generator, shift: float, at: int) -> list[np.ndarray]:
    runs = []
    for index in range(RUNS):
        median = 50.0 * (1 + rng.normal(0, RUN_NOISE)) * (1 + shift if index >= at else 1)
        runs.append(median * rng.lognormal(0, SAMPLE_SIGMA, SAMPLES_PER_RUN))
    return runs


def flags_ours(runs: list[np.ndarray], min_pct: float = 5.0) -> list[bool]:
    flags = []
    for index, current in enumerate(runs):
        previous = runs[max(0, index - BASELINE_RUNS) : index]
        if len(previous) < 2:
            flags.append(False)
            continue
        noise = analysis.noise_pct([float(np.median(run)) for run in previous])
        result = analysis.compare_with_baseline(
            list(current), list(np.concatenate(previous)), threshold_pct=max(min_pct, noise)
        )
        flags.append(result["regression"])
    return flags


def flags_fixed_threshold(runs: list[np.ndarray], threshold: float = 0.10) -> list[bool]:
    p95 = [float(np.percentile(run, 95)) for run in runs]
    return [index > 0 and p95[index] > (1 + threshold) * p95[index - 1] for index in range(len(runs))]


def detection(histories: int, shift: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    found = {"ours": 0, "fixed_10pct": 0}
    false = {"ours": 0, "fixed_10pct": 0}
    unshifted = 0
    for _ in range(histories):
        at = int(rng.integers(BASELINE_RUNS + 2, RUNS))
        runs = history(rng, shift, at)
        for name, flags in (("ours", flags_ours(runs)), ("fixed_10pct", flags_fixed_threshold(runs))):
            found[name] += int(flags[at])
            false[name] += sum(flag for index, flag in enumerate(flags) if index < at)
        unshifted += at
    return {
        name: {
            "recall": round(found[name] / histories, 3),
            "false_positives_per_100_runs": round(100 * false[name] / unshifted, 2),
        }
        for name in found
    }


class _Sleepy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.01)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


BARE_LOCUSTFILE = """
from locust import HttpUser, constant, task
class U(HttpUser):
    wait_time = constant(0)
    @task
    def card(self):
        self.client.get("/card", name="card")
"""


def overhead(users: int = 8, seconds: int = 15) -> dict:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sleepy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        progress("runner overhead: our runner")
        ours = runner.run_locust(
            base_url=url,
            requests=[{"name": "card", "method": "GET", "path": "/card"}],
            token="unused-by-this-endpoint",  # noqa: S106
            patients=[],
            stages=[[seconds, users, users]],
            stress_gate=None,
            rate_per_user=None,
            should_stop=lambda: False,
            on_tick=lambda *_: None,
        )
        ours_stats = ours.endpoints[-1]  # the aggregate row
        progress("runner overhead: bare locust")
        folder = Path(tempfile.mkdtemp(prefix="bare-locust-"))
        (folder / "locustfile.py").write_text(BARE_LOCUSTFILE)
        command = [runner.LOCUST, "-f", str(folder / "locustfile.py"), "--headless", "-u", str(users), "-r",
                   str(users), "--run-time", f"{seconds}s", "--host", url, "--csv", str(folder / "run"),
                   "--only-summary", "--loglevel", "WARNING"]  # fmt: skip
        subprocess.run(command, cwd=folder, capture_output=True, check=False)
        bare_stats = analysis.parse_stats(folder / "run_stats.csv")[-1]
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        server.shutdown()
    return {
        "ours": {key: ours_stats[key] for key in ("rps", "p50_ms", "p95_ms")},
        "bare_locust": {key: bare_stats[key] for key in ("rps", "p50_ms", "p95_ms")},
        "p50_ratio": round(ours_stats["p50_ms"] / bare_stats["p50_ms"], 3),
        "rps_ratio": round(ours_stats["rps"] / bare_stats["rps"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=200)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    figures = {"histories": args.histories, "runs_per_history": RUNS, "run_noise": RUN_NOISE}
    for shift in (0.05, 0.10, 0.20):
        progress(f"detection, {shift:.0%} shift, {args.histories} histories")
        figures[f"shift_{int(shift * 100)}pct"] = detection(args.histories, shift, seed=int(shift * 100))
    if not args.skip_overhead:
        figures["runner_overhead"] = overhead()
    emit(figures)


if __name__ == "__main__":
    main()
