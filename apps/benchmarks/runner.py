"""Run one benchmark: `locust --headless` as a subprocess (never imported here: it monkey-patches with
gevent), watched every second for cancellation, the deadline and its own CPU, then parsed."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from apps.core.ports import free_port

TEMPLATE = Path(__file__).with_name("locustfile_template.py")
LOCUST = str(Path(sys.executable).with_name("locust"))
SATURATED_CPU_PCT = 90.0


def stages_for(plan) -> list[list[float]]:
    """[[until_seconds, users, spawn_rate], ...] of the plan's shape."""
    users, rate, duration = plan.users, plan.spawn_rate, plan.duration_seconds
    if plan.kind == plan.Kind.STRESS:
        steps = max(1, math.ceil((plan.max_users - users) / max(plan.step_users, 1)) + 1)
        return [
            [
                (index + 1) * plan.step_seconds,
                min(users + index * plan.step_users, plan.max_users),
                max(rate, plan.step_users),
            ]
            for index in range(steps)
        ]
    if plan.kind == plan.Kind.SPIKE:
        third = duration / 3
        peak = math.ceil(users * plan.spike_multiplier)
        return [[third, users, rate], [2 * third, peak, float(peak)], [duration, users, float(peak)]]
    return [[duration, users, rate]]


@dataclass
class Outcome:
    status: str  # succeeded | cancelled | failed
    seconds: float
    samples: list[list] = field(default_factory=list)
    stats: Path | None = None
    history: Path | None = None
    cpu_max: float = 0.0
    error: str = ""


def run_locust(
    *,
    base_url: str,
    requests: list[dict],
    token: str,
    patients: list[int],
    stages: list[list[float]],
    stress_gate: dict | None,
    rate_per_user: float | None,
    should_stop: Callable[[], bool],
    on_tick: Callable[[float, float], None],
    processes: int = 1,
    workdir: Path | None = None,
) -> Outcome:
    """Start Locust, watch it, return what it measured. `should_stop` is polled every second.

    With processes > 1, Locust runs distributed: a master (the shape, the CSVs) and that many local
    worker processes generating the load, the same layout that spreads over many machines."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="bench-"))
    shutil.copy(TEMPLATE, folder / "locustfile.py")
    (folder / "patients.json").write_text(json.dumps(patients))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO")},
        "BENCH_REQUESTS": json.dumps(requests),
        "BENCH_TOKEN": token,
        "BENCH_PATIENTS_FILE": str(folder / "patients.json"),
        "BENCH_STAGES": json.dumps(stages),
        "BENCH_STRESS_GATE": json.dumps(stress_gate) if stress_gate else "",
        "BENCH_RATE_PER_USER": str(rate_per_user or ""),
        "BENCH_SAMPLES_FILE": str(folder / "samples-{pid}.jsonl"),  # one file per generator process
        "BENCH_RUNNER_PID": str(os.getpid()),  # each Locust process quits when this one is gone
    }
    planned = stages[-1][0]
    command = [LOCUST, "-f", str(folder / "locustfile.py"), "--headless", "--host", base_url, "--csv",
               str(folder / "run"), "--csv-full-history", "--only-summary", "--loglevel", "WARNING",
               "--run-time", f"{int(planned) + 30}s", "--stop-timeout", "5"]  # fmt: skip
    workers: list[list[str]] = []
    if processes > 1:
        port = free_port()
        command += ["--master", "--expect-workers", str(processes), "--master-bind-port", str(port)]
        workers = [[LOCUST, "-f", str(folder / "locustfile.py"), "--worker", "--master-host", "127.0.0.1",
                    "--master-port", str(port), "--loglevel", "WARNING"]] * processes  # fmt: skip
    with open(folder / "locust.log", "w") as log:
        process, *helpers = [
            subprocess.Popen(  # noqa: S603 (our own command lines)
                argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
            for argv in [command, *workers]
        ]
    watched = [psutil.Process(p.pid) for p in (process, *helpers)]
    # Locust writes its stats history from the moment the load starts: its start-up before that
    # (imports, spawning users: a full core for seconds on a slow machine) is not load it generates.
    history, measuring = folder / "run_stats_history.csv", False
    started, cpu_max, status = time.monotonic(), 0.0, "succeeded"
    while process.poll() is None:
        time.sleep(1)
        for generator in watched:  # each generator process is bound to one core
            with contextlib.suppress(psutil.Error):
                load = generator.cpu_percent(None)  # since the previous call: the first one primes it
                if measuring:
                    cpu_max = max(cpu_max, load)
        measuring = measuring or history.exists()
        elapsed = time.monotonic() - started
        on_tick(min(elapsed / planned, 1.0), elapsed)
        if should_stop():
            status = "cancelled"
            os.killpg(process.pid, signal.SIGTERM)  # Locust stops its users and writes its CSVs
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            break
    for helper in helpers:  # workers leave when their master quits
        try:
            helper.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(helper.pid, signal.SIGKILL)
    seconds = time.monotonic() - started
    samples = [json.loads(line) for path in folder.glob("samples-*.jsonl") for line in path.read_text().splitlines()]
    samples.sort(key=lambda sample: sample[0])
    if status != "cancelled" and process.returncode not in (0, 1):  # 1: Locust saw failed requests
        error = (folder / "locust.log").read_text()[-2000:]
        return Outcome(
            "failed", seconds, samples, cpu_max=cpu_max, error=f"locust exited {process.returncode}: {error}"
        )
    return Outcome(
        status,
        seconds,
        samples,
        stats=folder / "run_stats.csv",
        history=folder / "run_stats_history.csv",
        cpu_max=cpu_max,
    )
