"""Soak: the API at a steady target load for a long time (30 minutes by default; not run in CI).

What must hold at the end: no errors, bounded memory (each gunicorn worker's RSS sampled every 10 s: the
growth measured after the warm-up, in MB, and the last sample against the first after warm-up as a ratio;
a rate in MB per hour, with its 95% confidence interval, only once 10 minutes of samples follow the
warm-up), and exactly one audit record per PHI response served, with `audit verify` clean.

The load is an open model: each of CLIENTS threads sends on its own keep-alive connection at fixed
intended times (target rate / CLIENTS each), and latency is measured from the intended send time, so a
stalled server shows up in the figures instead of slowing the load (no coordinated omission).

Run:  .venv/bin/python bench/soak.py [--minutes 30] [--rate 100] [--patients 5000]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import http.client
import math
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO_ROOT, django_setup, emit, ensure_patients, policies, progress, server, short_lived_token

CLIENTS = 8
WARMUP_SECONDS = 60
SAMPLE_SECONDS = 10
# A slope fitted over a minute or two and multiplied to an hour is mostly noise (a 3 MB step at a worker's
# first large response read as "+90 MB per hour"): under this much data after the warm-up, only the growth
# measured is reported, no rate.
RATE_MIN_SECONDS = 600


def memory_growth(samples: list[tuple[float, float]], warmup: float = WARMUP_SECONDS) -> dict:
    """The worker RSS after the warm-up: the growth measured (last sample minus first, MB) over how long, and,
    from RATE_MIN_SECONDS of data on, the least-squares rate in MB per hour with its 95% confidence interval
    (Student's t on the slope's standard error)."""
    steady = [(t, mb) for t, mb in samples if t >= warmup]
    if not steady:
        return {"after_warmup_mb": None, "end_mb": None, "growth_mb": None, "measured_seconds": 0.0,
                "end_over_after_warmup": None, "growth_mb_per_hour": None, "growth_mb_per_hour_ci95": None}  # fmt: skip
    (first_t, first_mb), (last_t, last_mb) = steady[0], steady[-1]
    figures = {
        "after_warmup_mb": round(first_mb, 1),
        "end_mb": round(last_mb, 1),
        "growth_mb": round(last_mb - first_mb, 1),
        "measured_seconds": round(last_t - first_t, 1),
        "end_over_after_warmup": round(last_mb / first_mb, 3) if first_mb else None,
        "growth_mb_per_hour": None,
        "growth_mb_per_hour_ci95": None,
    }
    if last_t - first_t < RATE_MIN_SECONDS or len(steady) < 3:
        return figures
    from scipy import stats

    fit = stats.linregress([t for t, _ in steady], [mb for _, mb in steady])
    margin = stats.t.ppf(0.975, len(steady) - 2) * fit.stderr * 3600
    rate = fit.slope * 3600
    figures["growth_mb_per_hour"] = round(rate, 2)
    figures["growth_mb_per_hour_ci95"] = [round(rate - margin, 2), round(rate + margin, 2)]
    return figures


def request_mix(patient_ids: list[int]) -> list[tuple[str, float]]:
    """PHI reads a ward app makes, weighted: patient card, latest vitals, FHIR observation search."""

    def pick() -> int:
        return random.choice(patient_ids)

    return [
        (lambda: f"/api/v1/patients/{pick()}/", 0.4),
        (lambda: f"/api/v1/patients/{pick()}/vitals/?latest=true", 0.4),
        (lambda: f"/fhir/Observation?patient={pick()}&category=vital-signs&_sort=-date&_count=10", 0.2),
    ]


def drive(base: str, token: str, mix, rate: float, seconds: float, results: list, stop: threading.Event) -> None:
    """One client: a keep-alive connection, requests at fixed intended times, latency from those times."""
    host = urlsplit(base)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    interval, started = CLIENTS / rate, time.monotonic()
    makers, weights = zip(*mix, strict=True)
    sent = 0
    while not stop.is_set():
        intended = started + sent * interval
        if intended - started > seconds:
            break
        delay = intended - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        path = random.choices(makers, weights)[0]()
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        results.append((intended - started, status, (time.monotonic() - intended) * 1000))
        sent += 1
    connection.close()


def workers_rss(base_pid: int) -> dict[int, float]:
    parent = psutil.Process(base_pid)
    return {child.pid: child.memory_info().rss / 2**20 for child in parent.children(recursive=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="Target requests per second.")
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    for name in ("minutes", "rate"):
        # NaN compares false with everything, so `<= 0` let it through (and inf): a soak that never ends.
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            parser.error(f"--{name} must be a finite number above 0")
    if args.patients <= 0:
        parser.error("--patients must be above 0")  # --patients 0 crashed drawing a patient from none

    django_setup(args.database, args.redis)
    ensure_patients(args.patients)
    from apps.audit.models import AuditEvent
    from apps.clinical.models import Patient

    patient_ids = list(Patient.objects.filter(mrn__startswith="S200-").values_list("pk", flat=True)[: args.patients])
    client_name = f"soak-{int(time.time())}"
    token = short_lived_token(client_name, ["patient:read", "clinical:read"], hours=args.minutes / 60 + 1).token
    seconds = args.minutes * 60
    results: list[tuple[float, int, float]] = []
    samples: list[tuple[float, float]] = []
    with policies(rate_limit_requests=10**6), server("wsgi", workers=2, threads=16) as base:
        gunicorn = next(
            p for p in psutil.process_iter(["cmdline"]) if base.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or [])
        )
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=drive, args=(base, token, request_mix(patient_ids), args.rate, seconds, results, stop)
            )
            for _ in range(CLIENTS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(SAMPLE_SECONDS)
            elapsed = time.monotonic() - started
            rss = workers_rss(gunicorn.pid)
            samples.append((elapsed, max(rss.values()) if rss else 0.0))
            done = len(results)
            progress(f"{elapsed:6.0f}/{seconds:.0f} s  {done:,} requests  worker RSS max {samples[-1][1]:.1f} MB")
        time.sleep(2)  # the last audit records commit before their responses leave; this is only margin
        # The soak's own client's records (the workers also register their audit chains).
        audited = AuditEvent.objects.filter(actor_name=client_name).count()

    verify = subprocess.run([sys.executable, "manage.py", "audit", "verify"], cwd=REPO_ROOT, capture_output=True,
                            text=True)  # fmt: skip
    statuses: dict[int, int] = {}
    for _, status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(latency for _, status, latency in results if status == 200)
    served = statuses.get(200, 0)
    emit(
        {
            "minutes": args.minutes,
            "target_rps": args.rate,
            "achieved_rps": round(len(results) / seconds, 2),
            "requests": len(results),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors": len(results) - served,
            "latency_from_intended_send_ms": {
                "p50": round(statistics.median(latencies), 2) if latencies else None,
                "p99": round(latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None,
                "max": round(latencies[-1], 2) if latencies else None,
            },
            "worker_rss_mb": memory_growth(samples),
            "audit_records_written": audited,
            "phi_responses_served": served,
            "audit_equals_served": audited == served,
            "audit_verify_exit": verify.returncode,
            "audit_verify": (verify.stdout.strip().splitlines() or [""])[-1],
        }
    )


if __name__ == "__main__":
    main()
