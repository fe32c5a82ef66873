"""The multi-level cache: tier costs, hit rate under Zipf traffic, a cached read end to end, Redis loss.

In one run, on PostgreSQL and Redis:
  * L1 hit cost in µs; L2 hit cost as a ratio of a raw redis-py GET of the same bytes (plain and sealed);
  * hit rate of the patient_data and vital_signs namespaces, default TTLs and L1 bounds, under a
    Zipf(1.1) patient popularity over N patients, replayed on a simulated clock at --rate req/s;
  * a cached patient read end to end (gunicorn 2 workers x 16 threads, wrk 16 connections; auth,
    throttle, cache, audit) as a ratio of the bare /healthz view, the two alternated in short pairs
    (medians over the pairs), with the same read uncached beside it, and the CPU each request cost
    the api server, PostgreSQL, Redis and wrk;
  * a Redis of the bench's own, stopped in the middle of a load run: failed requests counted by wrk.

Run:  .venv/bin/python bench/caching.py --patients 200000
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import (
    clinician_token,
    cpu_us,
    django_setup,
    emit,
    ensure_patients,
    free_port,
    paired,
    per_call_us,
    policies,
    progress,
    random_paths_script,
    server,
    wrk,
    wsgi_get,
)


def make_stack(redis_url: str, **options):
    from apps.caching.stack import CacheStack

    return CacheStack.from_settings(redis_url, **options)


def bench_policy(namespace: str, **fields):
    from apps.caching.models import CachePolicy

    policy, _ = CachePolicy.objects.update_or_create(namespace=namespace, defaults=fields)
    return policy


def tier_costs(redis_url: str, sample: dict) -> dict:
    """L1 hit in µs; L2 hits against raw GETs of the same bytes, interleaved in blocks, medians of blocks."""
    bench_policy("bench_l1", l2_enabled=False, l3_enabled=False, contains_phi=False, encrypt=False)
    bench_policy("bench_l2_plain", l1_enabled=False, l3_enabled=False, contains_phi=False, encrypt=False)
    bench_policy("bench_l2_sealed", l1_enabled=False, l3_enabled=False, contains_phi=True, encrypt=True)
    stack = make_stack(redis_url, flush_interval=10**9)
    stack.get_or_load("bench_l1", ["k"], lambda: sample)
    l1 = statistics.median(per_call_us(lambda: stack.get_or_load("bench_l1", ["k"], lambda: sample), 20_000)
                           for _ in range(5))  # fmt: skip
    client = stack.redis()
    results = {"l1_hit_us": round(l1, 2)}
    for namespace in ("bench_l2_plain", "bench_l2_sealed"):
        stack.get_or_load(namespace, ["k"], lambda: sample, scope="patient:bench")
        raw_key = next(k for k in client.scan_iter("cpc:*:v:*") if k not in results.get("_seen", set()))
        results.setdefault("_seen", set()).add(raw_key)
        raw, ours = [], []
        for _ in range(20):
            raw.append(per_call_us(lambda k=raw_key: client.get(k), 500))
            ours.append(
                per_call_us(lambda n=namespace: stack.get_or_load(n, ["k"], lambda: sample, scope="patient:bench"), 500)
            )
        label = namespace.removeprefix("bench_")
        results[f"{label}_hit_us"] = round(statistics.median(ours), 2)
        results[f"{label}_raw_redis_get_us"] = round(statistics.median(raw), 2)
        results[f"{label}_over_raw_get"] = round(statistics.median(ours) / statistics.median(raw), 3)
    results.pop("_seen")
    stats = stack.stats()
    assert stats[("bench_l2_plain", "l2")]["hits"] >= 10_000, "the L2 figures must come from L2 hits"
    return results


def ttl_cache_ceiling(probabilities: list[float], rate: float, ttl: float) -> float:
    """The best hit rate any cache whose entries live `ttl` seconds from their load can reach.

    A key requested at rate r*p is loaded, then hit about r*p*ttl times before it expires: it hits
    r*p*ttl / (1 + r*p*ttl) of its requests, however large the cache.
    """
    return sum(p * (rate * p * ttl) / (1 + rate * p * ttl) for p in probabilities)


def rate_for_ceiling(probabilities: list[float], ttl: float, goal: float) -> float:
    """The request rate at which the TTL-cache ceiling reaches `goal` (bisection on a log scale)."""
    low, high = 1.0, 1e6
    while high / low > 1.01:
        middle = (low * high) ** 0.5
        low, high = (low, middle) if ttl_cache_ceiling(probabilities, middle, ttl) >= goal else (middle, high)
    return round(high)


def zipf_hit_rate(redis_url: str, patient_ids: list[int], rate: float, exponent: float) -> dict:
    """A clinician app's two reads per request (the patient, the latest vitals) on a simulated clock.

    Policies as seeded (TTLs, L1 bounds), L1 and the real Redis as L2. The loaders return a card of the
    right size without querying: the hit rate depends on the access pattern and the policies, and the
    replay covers hours. The first simulated 30 minutes (the longest TTL) warm up; the hit rate is
    reported for the hour after it, and over the whole replay for comparison.
    """
    from apps.caching.models import CachePolicy
    from apps.caching.services import cache_namespace_clear
    from apps.clinical.services import patient_scope

    for namespace in ("patient_data", "vital_signs"):
        cache_namespace_clear(namespace=namespace)
    # L3 holds what L2 holds for as long (Redis evicts nothing here), so it cannot change the hit
    # rate; it is switched off for the replay only, to keep hours of traffic quick to replay.
    CachePolicy.objects.filter(namespace__in=["patient_data", "vital_signs"]).update(l3_enabled=False)
    now = [time.time()]
    stack = make_stack(redis_url, clock=lambda: now[0], flush_interval=10**9, poll_interval=10**9)
    stack.tick(force=True)
    rng = random.Random(11)
    ranked = patient_ids[:]
    rng.shuffle(ranked)
    cumulative = list(itertools.accumulate(1 / (rank**exponent) for rank in range(1, len(ranked) + 1)))
    total = cumulative[-1]
    warmup, measured = 1800, 3600  # simulated seconds

    def card(pid: int) -> dict:
        return {"id": pid, "mrn": f"S200-{pid:06d}", "family_name": "Example", "given_name": "Pat", "sex": "other"}

    def vitals(pid: int) -> list[dict]:
        return [{"id": pid * 13 + n, "code": "8867-4", "value": 72.0, "unit": "/min"} for n in range(13)]

    def counters() -> dict:
        stats = stack.stats()
        return {
            ns: (
                stats[(ns, "source")]["requests"],
                stats[(ns, "source")]["loads"],
                stats.get((ns, "l2"), {}).get("hits", 0),
            )
            for ns in ("patient_data", "vital_signs")
        }

    requests = int(rate * (warmup + measured))
    after_warmup = None
    for n in range(requests):
        if after_warmup is None and n >= rate * warmup:
            after_warmup = counters()
        pid = ranked[bisect.bisect_left(cumulative, rng.random() * total)]
        stack.get_or_load("patient_data", ["patient", pid], lambda p=pid: card(p), scope=patient_scope(pid))
        stack.get_or_load("vital_signs", ["vitals", pid], lambda p=pid: vitals(p), scope=patient_scope(pid))
        now[0] += 1 / rate
    final = counters()
    CachePolicy.objects.filter(namespace__in=["patient_data", "vital_signs"]).update(l3_enabled=True)
    result = {"rate_per_s": rate, "requests": requests}
    probabilities = [1 / (rank**exponent) / total for rank in range(1, len(ranked) + 1)]
    for ns, (total_requests, total_loads, l2_hits) in final.items():
        warm_requests, warm_loads, warm_l2 = after_warmup[ns]
        window_requests, window_loads = total_requests - warm_requests, total_loads - warm_loads
        result[ns] = {
            "hit_rate_steady_hour": round(1 - window_loads / window_requests, 4),
            "hit_rate_from_cold": round(1 - total_loads / total_requests, 4),
            "l2_share_of_hits_steady": round((l2_hits - warm_l2) / max(1, window_requests - window_loads), 4),
            "ceiling_for_this_ttl": round(ttl_cache_ceiling(probabilities, rate, stack.policy(ns).ttl), 4),
        }
    return result


def served_from_cache_share(after_id: int) -> float:
    """Of the patient reads audited after `after_id`, the share whose record says the cache served it."""
    from django.db.models import Count, Q

    from apps.audit.models import AuditEvent

    counts = AuditEvent.objects.filter(id__gt=after_id, action="read", resource_type="Patient").aggregate(
        total=Count("id"), cached=Count("id", filter=Q(served_from_cache=True))
    )
    return round(counts["cached"] / max(counts["total"], 1), 4)


def end_to_end(token: str, sample_ids: list[int], seconds: int) -> dict:
    from django.db.models import Max

    from apps.audit.models import AuditEvent
    from apps.clinical.selectors import patient_card

    auth = {"Authorization": f"Bearer {token}"}
    script = random_paths_script([f"/api/v1/patients/{i}/" for i in sample_ids], auth)
    results = {}
    try:
        for label, cache_on in (("cached", True), ("uncached", False)):
            with (
                policies(cache=cache_on, rate_limit_requests=10**9),
                server("wsgi", env=os.environ.copy(), workers=2, threads=16) as base,
            ):
                progress(f"end to end: bare /healthz and the {label} patient read, alternated")
                if cache_on:  # Redis and the table hold every sampled card; each worker's L1 fills on first use
                    for patient_id in sample_ids:
                        patient_card(patient_id=patient_id)
                wrk(base + "/healthz", seconds=2)
                wrk(base + "/", seconds=3, script=script)
                before = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
                # Alternating short pairs, medians (harness.paired); the CPU ratio is the steadier one.
                read = paired(base, script, seconds)
                read["served_from_cache"] = served_from_cache_share(before)
                results[label] = read
    finally:
        os.unlink(script)
    results["cached_rps_over_uncached_rps"] = round(results["cached"]["rps"] / results["uncached"]["rps"], 2)
    return results


def request_cpu(token: str, sample_ids: list[int], n: int = 2000) -> dict:
    """Where a cached read's CPU goes: whole requests through Django's WSGI handler in this process
    (no network, one thread), and the two pieces every PHI read adds, alone."""
    from django.core.wsgi import get_wsgi_application

    from apps.audit.services import AuditEntry, audit_record
    from apps.ratelimits.throttling import limiter

    application = get_wsgi_application()
    auth = {"Authorization": f"Bearer {token}"}

    def cpu(action, count: int = n) -> float:
        cpu_us(action, 200)  # warm: every sampled card is cached after this
        return round(cpu_us(action, count), 1)

    ids = sample_ids[:200]
    entry = AuditEntry(actor_type="client", actor_id=1, actor_name="bench", action="read", resource_type="Patient")
    figures = {
        "bare_healthz_us": cpu(lambda i: wsgi_get(application, "/healthz")),
        "whoami_auth_and_drf_us": cpu(lambda i: wsgi_get(application, "/api/v1/whoami/", auth)),
        "cached_patient_read_us": cpu(lambda i: wsgi_get(application, f"/api/v1/patients/{ids[i % len(ids)]}/", auth)),
        "audit_record_alone_us": cpu(lambda i: audit_record(entry)),
        "limiter_check_alone_us": cpu(lambda i: limiter.hit("bench:cpu", limit=10**9, window_seconds=60)),
    }
    # What the end-to-end ratio could reach if the cache, the view and the threaded server cost nothing:
    # every read still authenticates through DRF, checks the limiter and commits its audit record.
    floor = figures["whoami_auth_and_drf_us"] + figures["limiter_check_alone_us"] + figures["audit_record_alone_us"]
    figures["bound_on_cached_read_over_bare"] = round(figures["bare_healthz_us"] / floor, 3)
    return figures


def redis_outage(token: str, sample_ids: list[int], seconds: int) -> dict:
    """A Redis of our own serves the api; it is killed a third of the way into a wrk run."""
    port = free_port()
    own = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    script = random_paths_script([f"/api/v1/patients/{i}/" for i in sample_ids], {"Authorization": f"Bearer {token}"})
    try:
        with policies(cache=True, rate_limit_requests=10**9), server("wsgi", env=env, workers=2, threads=16) as base:
            wrk(base + "/", seconds=2, script=script)
            killer = threading.Timer(seconds / 3, own.kill)
            progress(f"redis outage: {seconds}s of load, Redis killed after {seconds / 3:.0f}s")
            killer.start()
            during = wrk(base + "/", seconds=seconds, script=script)
            killer.join()
            ready = subprocess.run(["curl", "-s", base + "/readyz"], capture_output=True, text=True).stdout
    finally:
        own.kill()
        own.wait()
        os.unlink(script)
    return {
        "seconds": seconds,
        "redis_killed_after_s": round(seconds / 3, 1),
        "requests": during["requests"],
        "failed_requests": during["non_2xx"] + during["socket_errors"],
        "rps": during["rps"],
        "p99_ms": during.get("p99_ms"),
        "readyz_after": ready[:300],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument(
        "--rates",
        default="20,50,200,500",
        help="Simulated requests per second of the Zipf replays, comma separated (500: the brief's peak).",
    )
    parser.add_argument("--exponent", type=float, default=1.1)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tiers", "zipf", "e2e", "cpu", "outage"])
    args = parser.parse_args()

    django_setup(args.database_url, args.redis_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    ensure_patients(args.patients)

    from apps.clinical.api.representations import patient_json
    from apps.clinical.models import Patient

    ids = list(Patient.objects.filter(mrn__startswith="S200-").values_list("pk", flat=True)[: args.patients])
    sample_ids = random.Random(2).sample(ids, min(2000, len(ids)))
    sample = patient_json(Patient.objects.get(pk=sample_ids[0]))
    token = clinician_token("bench-cache")

    figures = {"bench": "caching", "patients": len(ids)}
    if "tiers" not in args.skip:
        progress("tier costs")
        figures["tier_costs"] = tier_costs(args.redis_url, sample)
    if "zipf" not in args.skip:
        figures["zipf_hit_rate"] = {"patients": len(ids), "exponent": args.exponent, "ttl_s": {}, "by_rate": []}
        for rate in (float(r) for r in args.rates.split(",")):
            progress(f"zipf({args.exponent}) replay over {len(ids):,} patients at {rate:g} req/s (simulated 1.5 h)")
            figures["zipf_hit_rate"]["by_rate"].append(zipf_hit_rate(args.redis_url, ids, rate, args.exponent))
        from apps.caching.models import CachePolicy

        figures["zipf_hit_rate"]["ttl_s"] = ttls = dict(
            CachePolicy.objects.filter(namespace__in=["patient_data", "vital_signs"]).values_list(
                "namespace", "ttl_seconds"
            )
        )
        weights = [1 / (rank**args.exponent) for rank in range(1, len(ids) + 1)]
        total = sum(weights)
        probabilities = [weight / total for weight in weights]
        figures["zipf_hit_rate"]["rate_per_s_where_any_ttl_cache_can_reach_0.9"] = {
            namespace: rate_for_ceiling(probabilities, ttl, 0.9) for namespace, ttl in ttls.items()
        }
    if "e2e" not in args.skip:
        figures["end_to_end"] = end_to_end(token, sample_ids, args.seconds)
    if "cpu" not in args.skip:
        progress("CPU per request, in process")
        with policies(cache=True, rate_limit_requests=10**9):
            figures["cpu_per_request"] = request_cpu(token, sample_ids)
    if "outage" not in args.skip:
        figures["redis_outage_under_load"] = redis_outage(token, sample_ids, args.seconds)
    emit(figures)


if __name__ == "__main__":
    main()
