"""Run one benchmark: `locust --headless` as a subprocess (never imported here: it monkey-patches with
gevent), watched every second for cancellation, the deadline and its own CPU, then parsed."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from apps.benchmarks import analysis
from apps.core.ports import free_port

TEMPLATE = Path(__file__).with_name("locustfile_template.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).with_name("locust"))
SATURATED_CPU_PCT = 90.0
# Reading a day's samples takes minutes (~5 us a line): the run's heartbeat is written every this many
# lines, or the checker fails it as a run whose worker died (HEARTBEAT_STALE_SECONDS) before it is recorded.
LINES_PER_TICK = 1 << 20


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
    samples: list[list] = field(default_factory=list)  # every sample, or a uniform random share of them
    endpoints: list[dict] = field(default_factory=list)  # Locust's stats CSV, the aggregate row last
    timeline: list[dict] = field(default_factory=list)  # Locust's stats history, aggregate rows
    cpu_max: float = 0.0
    error: str = ""
    totals: analysis.Totals | None = None  # of every sample (those of `samples` when not given)

    def __post_init__(self) -> None:
        if self.totals is None:
            self.totals = analysis.Totals.of(self.samples)


# What Locust's processes get of the runner's environment: what Python and TLS need, nothing else. The
# worker's own environment holds the deployment's secrets (SECRET_KEY, DATABASE_URL, cache and audit keys),
# which a load generator has no use for, and proxy settings, which requests (and so Locust) obeys: with
# HTTP_PROXY set, every request of the run, its bearer token included, went to the proxy.
INHERITED_ENV = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
                 "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}  # fmt: skip


def _inherited_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key in INHERITED_ENV or key.startswith("LC_")}


def _end(process: subprocess.Popen, grace: float) -> None:
    """Stop a Locust process and everything in its session (SIGTERM, then SIGKILL after `grace` seconds),
    and reap it: an unreaped child stays a zombie for as long as the worker lives."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # Locust stops its users and writes its CSVs
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
    max_samples: int | None = None,
    seed: int = 0,
) -> Outcome:
    """Start Locust, watch it, return what it measured. `should_stop` is polled every second.

    Of its samples, at most `max_samples` (BENCHMARK_MAX_SAMPLES) are kept, a uniform random share drawn
    with `seed` (the run's id: the same files give the same share); the totals are of every one.

    With processes > 1, Locust runs distributed: a master (the shape, the CSVs) and that many local
    worker processes generating the load, the same layout that spreads over many machines.

    Without a `workdir`, the run's files (the patients drawn, every sample, Locust's log) go to a folder of
    its own under VAR_DIR/benchmark-runs, removed when the run ends: each run left one behind in /tmp, for
    good. One whose worker was killed (SIGKILL, the OOM killer) is removed by run_folders_sweep."""
    if max_samples is None:
        from django.conf import settings

        max_samples = settings.BENCHMARK_MAX_SAMPLES
    place = (
        contextlib.nullcontext(workdir)
        if workdir is not None
        else tempfile.TemporaryDirectory(prefix=_folder_prefix(), dir=runs_folder())
    )
    with place as folder:
        return _run_in(Path(folder), base_url, requests, token, patients, stages, stress_gate, rate_per_user,
                       should_stop, on_tick, processes, max_samples, seed)  # fmt: skip


RUNS_FOLDER = "benchmark-runs"


def runs_folder() -> Path:
    """Where runs keep their files while they run (VAR_DIR/benchmark-runs, readable by this user only)."""
    from django.conf import settings

    folder = Path(settings.VAR_DIR) / RUNS_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())


def _folder_prefix() -> str:
    """bench-<host>-<pid>-<start, epoch s>-: which process on which host a folder is of, and since when (a
    pid reused by a later process is not its owner)."""
    return f"bench-{_host_tag()}-{os.getpid()}-{int(time.time())}-"


def run_folders_sweep() -> list[Path]:
    """Remove this host's run folders whose process is gone (killed mid-run: its `finally` never ran),
    with the patient ids, samples and log in them. A folder of a live process (a run of another worker on
    this host) is left; so is another host's (VAR_DIR shared), which that host's workers sweep."""
    removed = []
    prefix = f"bench-{_host_tag()}-"
    base = runs_folder()
    for folder in base.iterdir():
        if not folder.name.startswith(prefix):
            continue
        try:
            pid, started = (int(part) for part in folder.name[len(prefix) :].split("-")[:2])
        except ValueError:
            continue
        try:
            process = psutil.Process(pid)
            # A zombie is gone too (as services._worker_gone has it): a worker killed with its pool leaves the
            # pool process unreaped until init reaps it, and its folder was kept until the checker's next round.
            alive = process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started + 1
        except psutil.NoSuchProcess:
            alive = False
        except psutil.Error:
            alive = True
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _run_in(
    folder: Path,
    base_url: str,
    requests: list[dict],
    token: str,
    patients: list[int],
    stages: list[list[float]],
    stress_gate: dict | None,
    rate_per_user: float | None,
    should_stop: Callable[[], bool],
    on_tick: Callable[[float, float], None],
    processes: int,
    max_samples: int,
    seed: int,
) -> Outcome:
    shutil.copy(TEMPLATE, folder / "locustfile.py")
    (folder / "patients.json").write_text(json.dumps(patients))
    env = {
        **_inherited_env(),
        "BENCH_REQUESTS": json.dumps(requests),
        "BENCH_TOKEN": token,
        "BENCH_PATIENTS_FILE": str(folder / "patients.json"),
        "BENCH_STAGES": json.dumps(stages),
        "BENCH_STRESS_GATE": json.dumps(stress_gate) if stress_gate else "",
        "BENCH_RATE_PER_USER": str(rate_per_user or ""),
        "BENCH_SAMPLES_FILE": str(folder / "samples-{pid}.jsonl"),  # one file per generator process
        "BENCH_RUNNER_PID": str(os.getpid()),  # each Locust process quits when this one is gone
        "BENCH_PROJECT_ROOT": str(PROJECT_ROOT),  # the connection guard's module (apps.benchmarks.connect_guard)
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
    started_processes: list[subprocess.Popen] = []
    try:
        with open(folder / "locust.log", "w") as log:
            for argv in [command, *workers]:
                started_processes.append(
                    subprocess.Popen(  # noqa: S603 (our own command lines)
                        argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                    )
                )
        status, cpu_max, seconds = _watch(started_processes, folder / "run_stats_history.csv", planned,
                                          should_stop, on_tick)  # fmt: skip
    finally:
        # However the watch ended (a database error in a tick or a stop check, a worker's shutdown), no Locust
        # outlives it: it would go on loading the target with no one to stop or record it.
        for process in started_processes:
            _end(process, grace=5)
    process = started_processes[0]
    samples, totals = _read_samples(folder, max_samples, seed, lambda: on_tick(1.0, seconds))
    if status != "cancelled" and process.returncode not in (0, 1):  # 1: Locust saw failed requests
        error = (folder / "locust.log").read_text()[-2000:]
        return Outcome(
            "failed", seconds, samples, cpu_max=cpu_max, error=f"locust exited {process.returncode}: {error}",
            totals=totals,
        )  # fmt: skip
    stats, history = folder / "run_stats.csv", folder / "run_stats_history.csv"
    return Outcome(
        status,
        seconds,
        samples,
        endpoints=analysis.parse_stats(stats) if stats.exists() else [],
        timeline=analysis.successes_p95(analysis.parse_history(history), samples) if history.exists() else [],
        cpu_max=cpu_max,
        totals=totals,
    )


def _read_samples(
    folder: Path, limit: int, seed: int, tick: Callable[[], None] = lambda: None
) -> tuple[list[list], analysis.Totals]:
    """Every generator process's samples, read line by line: the totals of every one, and at most `limit`
    of them by start time, a uniform random share (reservoir sampling, seeded): all of a day's samples
    (86 million at 1,000 req/s) were read into one list, tens of GB, and the worker was killed for memory.

    A line that is not a whole sample is skipped: a process killed in the middle of a flush (one that
    outlasted its grace on a stop) leaves its last line cut short, and reading it failed the whole run,
    every sample measured before it lost. `tick` is called every LINES_PER_TICK lines."""
    kept: list[list] = []
    totals, names = analysis.Totals(), {}
    draw = random.Random(seed)  # noqa: S311 (a reproducible share of the samples, no secret)
    for path in sorted(folder.glob("samples-*.jsonl")):  # in one order: the same share for the same seed
        with path.open() as handle:
            for number, line in enumerate(handle, 1):
                if not number % LINES_PER_TICK:
                    tick()
                try:
                    sample = json.loads(line)
                except ValueError:
                    continue
                if not (isinstance(sample, list) and len(sample) == 5):
                    continue
                totals.add(sample)
                sample[4] = names.setdefault(sample[4], sample[4])  # one string per request name, not per sample
                if len(kept) < limit:
                    kept.append(sample)
                elif (slot := draw.randrange(totals.requests)) < limit:
                    kept[slot] = sample
    kept.sort(key=lambda sample: sample[0])
    return kept, totals.done()


def _watch(
    started: list[subprocess.Popen],
    history: Path,
    planned: float,
    should_stop: Callable[[], bool],
    on_tick: Callable[[float, float], None],
) -> tuple[str, float, float]:
    """Poll Locust every second until it exits or `should_stop` says so: (status, its max CPU, seconds)."""
    process, *helpers = started
    watched = [psutil.Process(p.pid) for p in started]
    # Locust writes its stats history from the moment the load starts: its start-up before that
    # (imports, spawning users: a full core for seconds on a slow machine) is not load it generates.
    measuring = False
    began, cpu_max, status = time.monotonic(), 0.0, "succeeded"
    while process.poll() is None:
        time.sleep(1)
        for generator in watched:  # each generator process is bound to one core
            with contextlib.suppress(psutil.Error):
                load = generator.cpu_percent(None)  # since the previous call: the first one primes it
                if measuring:
                    cpu_max = max(cpu_max, load)
        measuring = measuring or history.exists()
        elapsed = time.monotonic() - began
        on_tick(min(elapsed / planned, 1.0), elapsed)
        if should_stop():
            status = "cancelled"
            _end(process, grace=20)
            break
    for helper in helpers:  # workers leave when their master quits
        _end_when_done(helper)
    return status, cpu_max, time.monotonic() - began


def _end_when_done(helper: subprocess.Popen) -> None:
    try:
        helper.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _end(helper, grace=0)
