"""Shared pieces of the bench scripts: start the product's servers, drive them with wrk, print JSON.

Every figure a bench prints is paired with a baseline measured in the same run, because these
machines are noisy: compare ratios, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from apps.core.ports import free_port  # noqa: E402 (the repository root is on the path from here)

# The bench's own files (the metrics rollups, the local caches' spill): never the product's VAR_DIR.
BENCH_VAR_DIR = REPO_ROOT / "var" / "bench"
# What every bench server runs on, whatever the shell that started the bench points at: set by django_setup
# (isolate). Empty, a server would inherit the shell's DATABASE_URL, VAR_DIR and DEBUG: bench/stack.py, which
# set nothing up, wrote its requests into a running product's rollups, and measured with DEBUG on.
_ISOLATION: dict[str, str] = {}


def isolate(database_url: str) -> None:
    """Point this process, and every server it starts, at the bench's own database and VAR_DIR, DEBUG off."""
    BENCH_VAR_DIR.mkdir(parents=True, exist_ok=True)
    _ISOLATION.update(DATABASE_URL=database_url, VAR_DIR=str(BENCH_VAR_DIR), DEBUG="false")
    os.environ.update(_ISOLATION)


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is needed for throughput figures: apt-get install wrk")
    return wrk


def progress(message: str) -> None:
    """Live progress on stderr, so stdout stays pure JSON."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def server(kind: str, env: dict[str, str] | None = None, workers: int = 2, threads: int = 1) -> Iterator[str]:
    """Start the api (gunicorn, WSGI) or live (uvicorn, ASGI) server; yield its base URL. It runs on the
    bench's database and VAR_DIR with DEBUG off (django_setup), whatever `env` or the shell say."""
    if not _ISOLATION:
        raise RuntimeError(
            "a bench server runs on the bench's own database and VAR_DIR: call harness.django_setup first"
        )
    port = free_port()
    # BENCH_API_WORKERS / BENCH_API_THREADS: another process/thread mix than the bench's own (the
    # Procfile's), for both server kinds alike; announced, since every figure of the run depends on it.
    if os.environ.get("BENCH_API_WORKERS") or os.environ.get("BENCH_API_THREADS"):
        workers = int(os.environ.get("BENCH_API_WORKERS") or workers)
        threads = int(os.environ.get("BENCH_API_THREADS") or threads)
        progress(f"{kind} server: {workers} workers x {threads} threads (BENCH_API_WORKERS/THREADS)")
    if kind == "wsgi":
        command = [
            str(VENV_BIN / "gunicorn"),
            "controlplane.wsgi",
            "--config=controlplane/gunicorn.conf.py",  # the Procfile's hooks
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--no-control-socket",
            "--log-level=warning",
        ]
    elif kind == "asgi":
        command = [
            str(VENV_BIN / "uvicorn"),
            "controlplane.asgi:application",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={workers}",
            "--no-access-log",
            "--lifespan=off",
            "--log-level=warning",
        ]
    else:
        raise ValueError(kind)
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env={**os.environ, **(env or {}), **_ISOLATION}, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{kind} server did not start")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a worker stuck in a request: it would outlive the bench
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _process_cpu_seconds(api_port: int) -> dict[tuple[str, int], float]:
    """CPU seconds so far of the api server listening on `api_port` and of PostgreSQL and Redis, by process."""
    import psutil

    bind = f"127.0.0.1:{api_port}"
    seconds = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        name, cmdline = process.info["name"] or "", " ".join(process.info["cmdline"] or [])
        if bind in cmdline:
            group = "api"
        elif name.startswith("postgres"):
            group = "postgres"
        elif name.startswith("redis-server"):
            group = "redis"
        else:
            continue
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[(group, process.pid)] = times.user + times.system
    return seconds


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(
    url: str,
    connections: int = 16,
    seconds: int = 10,
    threads: int = 2,
    headers: dict | None = None,
    script: str | None = None,
    cpu: bool = False,
) -> dict:
    """Run wrk and return req/s with latency percentiles in ms (a Lua `script` may vary the requests).

    `cpu`: also where the CPU went, per request, in microseconds: the api server (its processes on the
    URL's port), PostgreSQL, Redis and wrk itself, all on this machine's two cores.
    """
    command = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", script]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    port = urllib.parse.urlsplit(url).port
    before, wrk_before = (_process_cpu_seconds(port), _children_cpu_seconds()) if cpu else ({}, 0.0)
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    cpu_seconds = {}
    if cpu:
        for (group, pid), total in _process_cpu_seconds(port).items():
            cpu_seconds[group] = cpu_seconds.get(group, 0.0) + total - before.get((group, pid), 0.0)
        cpu_seconds["wrk"] = _children_cpu_seconds() - wrk_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)$", output, re.MULTILINE):
        latency[f"p{pct}_ms"] = round(float(value) * _UNITS[unit], 3)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    figures = {
        "rps": round(rps, 1),
        **latency,
        "requests": requests,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
    }
    if cpu:
        per_request = {group: round(total / max(requests, 1) * 1e6) for group, total in cpu_seconds.items()}
        figures["cpu_us_per_request"] = {**per_request, "total": sum(per_request.values())}
    return figures


def paired(base: str, script: str, seconds: int, rounds: int = 3) -> dict:
    """The bare /healthz view and a read (`script`'s paths), alternated in `rounds` short pairs.

    This machine's speed swings 2-3x within a minute, so one long bare run and one long read run can
    land in different phases and the ratio measures the drift. Each pair's ratio is taken inside the
    pair, and the figures are medians over the pairs (p99: the median of the pairs' p99s), so one
    dip does not decide them. CPU per request is counted for every process, as `wrk(cpu=True)` does.
    """
    import statistics

    length = max(2, round(seconds / rounds))
    pairs = []
    for _ in range(rounds):
        bare = wrk(base + "/healthz", seconds=length, cpu=True)
        read = wrk(base + "/", seconds=length, script=script, cpu=True)
        pairs.append({
            "bare_rps": bare["rps"], "rps": read["rps"], "rps_over_bare": round(read["rps"] / bare["rps"], 3),
            "bare_cpu_over_read_cpu": round(
                bare["cpu_us_per_request"]["total"] / read["cpu_us_per_request"]["total"], 3
            ),
            "p50_ms": read.get("p50_ms"), "p99_ms": read.get("p99_ms"),
            "bare_cpu_us_per_request": bare["cpu_us_per_request"], "cpu_us_per_request": read["cpu_us_per_request"],
            "requests": read["requests"], "non_2xx": read["non_2xx"], "socket_errors": read["socket_errors"],
        })  # fmt: skip

    def median(name: str) -> float | None:
        # A run whose output had no such percentile (wrk prints none for a run without a reply) is left out.
        values = [pair[name] for pair in pairs if pair[name] is not None]
        return round(statistics.median(values), 3) if values else None

    def median_cpu(name: str) -> dict:
        return {group: round(statistics.median(pair[name][group] for pair in pairs)) for group in pairs[0][name]}

    return {
        **{name: median(name) for name in ("rps_over_bare", "bare_cpu_over_read_cpu", "rps", "bare_rps")},
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "cpu_us_per_request": median_cpu("cpu_us_per_request"),
        "bare_cpu_us_per_request": median_cpu("bare_cpu_us_per_request"),
        **{name: sum(pair[name] for pair in pairs) for name in ("requests", "non_2xx", "socket_errors")},
        "pairs": pairs,
    }


def percentiles(samples_ns: list[int]) -> dict:
    """p50/p90/p99/max of latencies measured in nanoseconds, in milliseconds."""
    ordered = sorted(samples_ns)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6, 4)

    return {"n": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)}


def random_paths_script(paths: list[str], headers: dict[str, str]) -> str:
    """A wrk Lua script that sends each request to a random path of the list; returns its file name."""
    import tempfile

    lua_paths = ",\n".join(f'"{p}"' for p in paths)
    lua_headers = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
    body = (
        f"local paths = {{\n{lua_paths}\n}}\n"
        f"local headers = {{ {lua_headers} }}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        '  return wrk.format("GET", paths[math.random(#paths)], headers)\n'
        "end\n"
    )
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 - wrk reads it later
    handle.write(body)
    handle.close()
    # It holds the bench's bearer token: removed when the bench exits (each run left one in /tmp for good).
    atexit.register(_remove_quietly, handle.name)
    return handle.name


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


# SIGTERM (a CI timeout, `kill`) ends a bench as Ctrl-C does, its finally blocks and atexit hooks run: Python's
# default skipped them, which left the wrk script with the bench's bearer token in /tmp and the token valid.
signal.signal(signal.SIGTERM, _exit_on_sigterm)


def emit(figures: dict) -> None:
    print(json.dumps(figures, indent=2))


def django_setup(database_url: str, redis_url: str = "") -> None:
    """Point this process (and the servers it starts) at the bench database, migrate it, set Django up."""
    import psycopg

    # Production settings: DEBUG off (Django's debug cursor alone formats every query's SQL).
    os.environ.update(
        DB_POOL_MIN_SIZE="4",
        DB_POOL_MAX_SIZE="20",
        SECRET_KEY="bench-" + "k" * 60,
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    # The bench's VAR_DIR, not the shell's: a product's VAR_DIR set there was kept (setdefault).
    isolate(database_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    progress("migrating the bench database")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, check=True)
    import django

    django.setup()


def ensure_patients(count: int, *, days: int = 2, rounds_per_day: int = 4) -> float | None:
    """The first `count` synthetic patients of seed 200 (MRNs S200-...); loads the missing ones (a load stopped
    half-way leaves a hole in each loader process's range), returns the load time."""
    from apps.clinical.loader import synthetic_ranges_missing

    missing = synthetic_ranges_missing(seed=200, count=count)
    if not missing:
        return None
    progress(f"loading {sum(length for _, length in missing):,} patients (COPY, 2 workers)")
    started = time.perf_counter()
    for first_index, length in missing:
        subprocess.run(
            [sys.executable, "manage.py", "load_synthetic", "--patients", str(length), "--days", str(days),
             "--rounds-per-day", str(rounds_per_day), "--seed", "200", "--first-index", str(first_index)],
            cwd=REPO_ROOT, check=True, env=os.environ, stdout=sys.stderr,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        progress("VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    return elapsed


def patient_sample_args(
    description: str, *, database_url: str, patients: int, days: int, days_help: str, repeat: int, repeat_help: str
) -> argparse.Namespace:
    """The flags of a bench that times reads on sampled synthetic patients, checked: the FHIR benches shared
    them, only their defaults and help differing."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=database_url)
    parser.add_argument("--patients", type=int, default=patients)
    parser.add_argument("--days", type=int, default=days, help=days_help)
    parser.add_argument("--repeat", type=int, default=repeat, help=repeat_help)
    args = parser.parse_args()
    if args.patients < 1 or args.repeat < 1:
        parser.error("--patients and --repeat must be above 0")
    return args


def sampled_patients(args: argparse.Namespace) -> tuple[float | None, list[int]]:
    """Django set up on the bench database holding the first --patients synthetic patients (loaded if missing):
    the load time and --repeat patient ids drawn from them at random (with repeats)."""
    django_setup(args.database_url)
    loaded_in = ensure_patients(args.patients, days=args.days)
    from apps.clinical.models import Patient

    patient_ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True)[: args.patients])
    return loaded_in, [random.choice(patient_ids) for _ in range(args.repeat)]


def alternated(first, second, patient_ids: list[int]) -> tuple[list[int], list[int]]:
    """Wall times (ns) of first(patient) and second(patient), one of each in turn on every sampled patient."""
    times: tuple[list[int], list[int]] = ([], [])
    for patient_id in patient_ids:
        for call, kept in ((first, times[0]), (second, times[1])):
            started = time.perf_counter_ns()
            call(patient_id)
            kept.append(time.perf_counter_ns() - started)
    return times


def short_lived_token(name: str, scopes: list[str], *, hours: float = 12):
    """An API token for a bench (an IssuedToken): it expires after `hours` and is revoked when the bench
    exits. A bench's PHI-reading tokens stayed valid for good, one more each run."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.services import api_client_create

    issued = api_client_create(name=name, scopes=scopes, expires_at=timezone.now() + timedelta(hours=hours))
    atexit.register(_revoke_quietly, issued.client.pk)
    return issued


def _revoke_quietly(client_id: int) -> None:
    from apps.accounts.models import ApiClient
    from apps.accounts.services import api_client_revoke

    with contextlib.suppress(Exception):  # the bench database is gone: the token expires on its own
        api_client_revoke(client=ApiClient.objects.get(pk=client_id))


def clinician_token(name: str) -> str:
    """A token with a clinical app's read scopes and not `benchmark`, so every request meets the limiter."""
    from apps.accounts import scopes

    return short_lived_token(f"{name}-{time.time_ns()}", [scopes.PATIENT_READ, scopes.CLINICAL_READ]).token


@contextlib.contextmanager
def policies(*, cache: bool | None = None, rate_limit_requests: int | None = None) -> Iterator[None]:
    """Switch the cache namespaces on or off and set every rate limit for a bench phase; restore after.

    Servers started inside the block read the changed rows when they start.
    """
    from apps.caching.models import CachePolicy
    from apps.ratelimits.models import RateLimitPolicy

    saved_cache = list(CachePolicy.objects.values_list("pk", "enabled"))
    saved_limits = list(RateLimitPolicy.objects.values_list("pk", "requests", "current_factor"))
    try:
        if cache is not None:
            for policy in CachePolicy.objects.all():
                policy.enabled = cache
                policy.save()
        if rate_limit_requests is not None:
            for policy in RateLimitPolicy.objects.all():
                policy.requests, policy.current_factor = rate_limit_requests, 1.0
                policy.save()
        yield
    finally:
        for pk, enabled in saved_cache:
            CachePolicy.objects.filter(pk=pk).update(enabled=enabled)
        for pk, requests, factor in saved_limits:
            RateLimitPolicy.objects.filter(pk=pk).update(requests=requests, current_factor=factor)
        if saved_cache:
            CachePolicy.objects.get(pk=saved_cache[0][0]).save()  # tells running processes


def per_call_us(call, n: int) -> float:
    """Mean wall time of `call()` over n calls, in microseconds."""
    started = time.perf_counter_ns()
    for _ in range(n):
        call()
    return (time.perf_counter_ns() - started) / n / 1000


def cpu_us(action, n: int) -> float:
    """Mean CPU time of `action(index)` over n calls, in microseconds (this process, all threads)."""
    started = time.process_time()
    for index in range(n):
        action(index)
    return (time.process_time() - started) / n * 1e6


def wsgi_get(handler, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A GET through a Django WSGI handler in this process (no network, no server); raises unless it is a 2xx."""
    import io

    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
               "HTTP_HOST": "127.0.0.1", "SERVER_PORT": "80", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.input": io.BytesIO()}  # fmt: skip
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    statuses = []
    body = handler(environ, lambda status, response_headers: statuses.append(status))
    try:
        content = b"".join(body)
    finally:
        if hasattr(body, "close"):  # optional in WSGI; Django's responses have it
            body.close()
    if not statuses[0].startswith("2"):  # a figure measured on an error response would mean nothing
        raise RuntimeError(f"GET {path}: {statuses[0]}: {content[:300]!r}")
    return content
