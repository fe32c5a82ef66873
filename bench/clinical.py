"""The clinical data plane on PostgreSQL: database-layer latencies and the API end to end.

Loads N synthetic patients into its own database (once: a later run reuses them), then measures, in one run:
  * MRN lookup through the selector (Django ORM + pool) against a raw psycopg primary-key lookup;
  * a patient's latest value of every vital sign over 24 h;
  * the API end to end, uncached, under gunicorn (the Procfile's 2 workers x 16 threads) with wrk at
    16 connections, each endpoint as a ratio of the bare /healthz view, the two alternated in short
    pairs (medians over the pairs), with the CPU per request of the api server, PostgreSQL, Redis and
    wrk, for both;
  * the server-side CPU of each read, uncached, through Django's WSGI handler in this process (no
    network, one thread) as a ratio of the bare view's: steadier than req/s on this machine, and what
    an A/B of two commits compares (`--cpu-only` from each checkout);
  * the queries the indexes are designed for, on a few patients with months of history;
  * the same database queries and two API endpoints with the designed indexes replaced by Django's
    default single-column foreign-key index, to show what the indexes buy.

Run:  .venv/bin/python bench/clinical.py --patients 200000 --days 2
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import (
    REPO_ROOT,
    clinician_token,
    cpu_us,
    django_setup,
    emit,
    ensure_patients,
    paired,
    percentiles,
    policies,
    progress,
    random_paths_script,
    server,
    wrk,
    wsgi_get,
)

DESIGNED_INDEXES = {
    # name: the plain index Django would have given the same foreign key
    "clinical_obs_patient_code": "clinical_observation",
    "clinical_obs_patient_cat": "clinical_observation",
}


def timed(call, samples: list) -> list[int]:
    latencies = []
    for sample in samples:
        started = time.perf_counter_ns()
        call(sample)
        latencies.append(time.perf_counter_ns() - started)
    return latencies


def database_layer(url: str, sample_ids: list[int], sample_mrns: list[str], repeat: int) -> dict:
    """The selector's MRN lookup against a raw psycopg PK lookup, sampled alternately (one of each in
    turn, so a noisy moment of the machine hits both), after both have touched every sampled row once."""
    from django.db import connection

    from apps.clinical import selectors

    since = datetime.now(UTC) - timedelta(hours=24)
    ids = [random.choice(sample_ids) for _ in range(repeat)]
    mrns = [random.choice(sample_mrns) for _ in range(repeat)]
    with psycopg.connect(url) as raw:
        query = "SELECT id, mrn, family_name, given_name, birth_date, sex FROM clinical_patient WHERE id = %s"

        def raw_lookup(pk: int) -> None:
            raw.execute(query, [pk], prepare=True).fetchone()

        def mrn_lookup(mrn: str) -> None:
            selectors.patient_by_identifier(value=mrn)

        connection.ensure_connection()
        timed(raw_lookup, sample_ids)  # warm: every sampled row and index page, both ways
        timed(mrn_lookup, sample_mrns)
        raw_ns, mrn_ns = [], []
        for pk, mrn in zip(ids, mrns, strict=True):
            raw_ns += timed(raw_lookup, [pk])
            mrn_ns += timed(mrn_lookup, [mrn])
    raw_pk, mrn_lookup_figures = percentiles(raw_ns), percentiles(mrn_ns)

    def latest_vitals(pk: int) -> None:
        selectors.latest_observations(patient_id=pk, category="vital-signs", since=since)

    timed(latest_vitals, sample_ids)
    latest = percentiles(timed(latest_vitals, ids))
    return {
        "raw_psycopg_pk_lookup": raw_pk,
        "mrn_lookup_selector": mrn_lookup_figures,
        "mrn_lookup_p50_over_raw_pk_p50": round(mrn_lookup_figures["p50_ms"] / raw_pk["p50_ms"], 3),
        "mrn_lookup_p99_over_raw_pk_p99": round(mrn_lookup_figures["p99_ms"] / raw_pk["p99_ms"], 3),
        "latest_vitals_24h_all_codes": latest,
    }


def deep_history_layer(deep_ids: list[int], repeat: int) -> dict:
    """The queries the designed indexes exist for, on patients with months of history."""
    from apps.clinical import selectors

    since = datetime.now(UTC) - timedelta(hours=24)
    ids = [random.choice(deep_ids) for _ in range(repeat)]
    queries = {
        "latest_vitals_24h_all_codes": lambda i: selectors.latest_observations(
            patient_id=i, category="vital-signs", since=since
        ),
        "heart_rate_series_newest_100": lambda i: list(
            selectors.observation_list(patient_id=i, codes=["8867-4"])[:100]
        ),
        "vital_signs_newest_10": lambda i: list(selectors.observation_list(patient_id=i, category="vital-signs")[:10]),
    }
    results = {}
    for name, query in queries.items():
        timed(query, ids[: max(1, repeat // 10)])  # warm up
        results[name] = percentiles(timed(query, ids))
    return results


def api_layer(env: dict, token: str, sample_ids: list[int], sample_mrns: list[str], seconds: int) -> dict:
    auth = {"Authorization": f"Bearer {token}"}
    endpoints = {
        "api_latest_vitals": [f"/api/v1/patients/{i}/vitals/?latest=true" for i in sample_ids],
        "api_patient_by_id": [f"/api/v1/patients/{i}/" for i in sample_ids],
        "fhir_patient_read": [f"/fhir/Patient/{i}" for i in sample_ids],
        "fhir_patient_by_identifier": [
            f"/fhir/Patient?identifier=http://hospital.example.org/mrn%7C{m}" for m in sample_mrns
        ],
        "fhir_vitals_search": [
            f"/fhir/Observation?patient={i}&category=vital-signs&_sort=-date&_count=10" for i in sample_ids
        ],
    }
    results = {}
    with server("wsgi", env=env, workers=2, threads=16) as base:
        wrk(base + "/healthz", seconds=2)
        for name, paths in endpoints.items():
            # The bare view alternates with each endpoint in short pairs (harness.paired): this
            # machine's speed drifts within a run, and a baseline from another moment would put that
            # drift into the ratio.
            progress(f"api: bare /healthz and {name}, alternated")
            script = random_paths_script(paths, auth)
            wrk(base + "/", seconds=2, script=script)
            results[name] = paired(base, script, seconds)
            os.unlink(script)
    return results


# Each uncached read (a path template by patient id) whose CPU `request_cpu` measures.
CPU_READS = {
    "bare_healthz": "/healthz",
    "api_patient_by_id": "/api/v1/patients/{}/",
    "api_latest_vitals": "/api/v1/patients/{}/vitals/?latest=true",
    "api_vitals_newest_10": "/api/v1/patients/{}/vitals/?limit=10",
    "api_encounters": "/api/v1/patients/{}/encounters/",
    "api_medications_active": "/api/v1/patients/{}/medications/?status=active",
    "fhir_patient_read": "/fhir/Patient/{}",
    "fhir_vitals_search": "/fhir/Observation?patient={}&category=vital-signs&_sort=-date&_count=10",
    "fhir_encounter_search": "/fhir/Encounter?patient={}&status=finished,in-progress",
    "fhir_medication_search": "/fhir/MedicationRequest?patient={}&status=active&_count=10",
}


def request_cpu(token: str, sample_ids: list[int], n: int = 1000, rounds: int = 3) -> dict:
    """CPU per request of each read in `CPU_READS` through Django's WSGI handler in this process, the reads
    alternated over `rounds` (the fastest round of each: this machine's speed swings), and the bare view's
    as a ratio of each."""
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    auth = {"Authorization": f"Bearer {token}"}
    ids = sample_ids[:500]
    actions = {}
    for name, template in CPU_READS.items():

        def action(i: int, template: str = template) -> bytes:
            return wsgi_get(application, template.format(ids[i % len(ids)]), auth)

        cpu_us(action, n // 5)  # warm (compiled shapes, pooled connections); wsgi_get raises on an error
        actions[name] = action
    fastest: dict[str, float] = {}
    for _ in range(rounds):
        for name, action in actions.items():
            spent = cpu_us(action, n)
            fastest[name] = min(fastest.get(name, spent), spent)
    bare = fastest["bare_healthz"]
    return {
        name: {"cpu_us": round(spent, 1), "bare_cpu_over_read_cpu": round(bare / spent, 3)}
        for name, spent in fastest.items()
    }


def swap_indexes(url: str, *, designed: bool) -> None:
    """Replace the designed indexes with Django's default FK index (designed=False), or back."""
    from django.db import connection

    from apps.clinical.models import Observation

    with psycopg.connect(url, autocommit=True) as conn:
        if not designed:
            for name in DESIGNED_INDEXES:
                conn.execute(f'DROP INDEX IF EXISTS "{name}"')
            conn.execute('CREATE INDEX IF NOT EXISTS "bench_obs_patient_fk" ON clinical_observation (patient_id)')
        else:
            with connection.schema_editor(collect_sql=True) as editor:
                for index in Observation._meta.indexes:
                    if index.name in DESIGNED_INDEXES:
                        conn.execute(
                            str(index.create_sql(Observation, editor)).replace(
                                "CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1
                            )
                        )
            conn.execute('DROP INDEX IF EXISTS "bench_obs_patient_fk"')
        conn.execute("ANALYZE clinical_observation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rounds-per-day", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5000, help="Database-layer samples per query.")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint.")
    parser.add_argument("--deep-patients", type=int, default=200, help="Patients with a long history.")
    parser.add_argument("--deep-days", type=int, default=180, help="Days of history of those patients.")
    parser.add_argument("--skip-no-index", action="store_true")
    parser.add_argument("--cpu-only", action="store_true", help="Only the in-process CPU per read (request_cpu).")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="The servers' Redis (limiter, cache, channel layer). Without one the product runs embedded: the "
        "limiter then keeps its window in the database, a transaction per request.",
    )
    args = parser.parse_args()

    url = args.database_url
    django_setup(url, args.redis_url)
    from apps.clinical.models import Observation, Patient

    load = None
    seconds = ensure_patients(args.patients, days=args.days, rounds_per_day=args.rounds_per_day)
    if seconds is not None:
        load = {"seconds": round(seconds, 1)}
    deep_existing = Patient.objects.filter(mrn__startswith="S201-").count()
    if deep_existing < args.deep_patients:
        progress(f"loading {args.deep_patients - deep_existing:,} patients with {args.deep_days} days of history")
        subprocess.run(
            [sys.executable, "manage.py", "load_synthetic", "--patients", str(args.deep_patients - deep_existing),
             "--days", str(args.deep_days), "--rounds-per-day", str(args.rounds_per_day), "--seed", "201",
             "--first-index", str(deep_existing), "--batch-size", "20"],
            cwd=REPO_ROOT, check=True, env=os.environ, stdout=sys.stderr,
        )  # fmt: skip
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE clinical_observation")
    deep_ids = list(Patient.objects.filter(mrn__startswith="S201-").values_list("pk", flat=True))
    with psycopg.connect(url) as conn:
        observations = conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = 'clinical_observation'"
        ).fetchone()[0]
    if load:
        load["observation_rows_per_s"] = round(Observation.objects.count() / load["seconds"])

    rng = random.Random(1)
    ids = list(Patient.objects.filter(mrn__startswith="S200-").values_list("pk", flat=True)[: args.patients])
    sample_ids = rng.sample(ids, min(2000, len(ids)))
    sample_mrns = list(Patient.objects.filter(pk__in=sample_ids).values_list("mrn", flat=True))
    token = clinician_token("bench")

    progress("CPU per uncached read, in process")
    with policies(cache=False, rate_limit_requests=10**9):
        cpu = request_cpu(token, sample_ids)
    if args.cpu_only:
        emit({"bench": "clinical", "patients": Patient.objects.count(), "observations_estimate": observations,
              "request_cpu": cpu})  # fmt: skip
        return

    progress("database layer, designed indexes")
    database = database_layer(url, sample_ids, sample_mrns, args.repeat)
    deep = deep_history_layer(deep_ids, min(args.repeat, 2000)) if deep_ids else None
    progress("API end to end, designed indexes")
    with policies(cache=False, rate_limit_requests=10**9):  # uncached, and no client is ever limited
        api = api_layer(os.environ.copy(), token, sample_ids, sample_mrns, args.seconds)

    without = None
    if not args.skip_no_index:
        progress("replacing the designed indexes with Django's default FK index")
        swap_indexes(url, designed=False)
        try:
            database_plain = database_layer(url, sample_ids, sample_mrns, max(200, args.repeat // 10))
            deep_plain = deep_history_layer(deep_ids, 200) if deep_ids else None
            with policies(cache=False, rate_limit_requests=10**9):
                api_plain = api_layer(os.environ.copy(), token, sample_ids[:500], sample_mrns[:500], args.seconds)
        finally:
            progress("restoring the designed indexes")
            swap_indexes(url, designed=True)
        without = {
            "deep_history": deep_plain,
            "deep_history_speedup_p50": {
                name: round(deep_plain[name]["p50_ms"] / deep[name]["p50_ms"], 2) for name in deep
            }
            if deep and deep_plain
            else None,
            "latest_vitals_24h_all_codes": database_plain["latest_vitals_24h_all_codes"],
            "api_latest_vitals": api_plain["api_latest_vitals"],
            "fhir_vitals_search": api_plain["fhir_vitals_search"],
            "designed_index_speedup_latest_vitals_p50": round(
                database_plain["latest_vitals_24h_all_codes"]["p50_ms"]
                / database["latest_vitals_24h_all_codes"]["p50_ms"],
                2,
            ),
        }

    emit(
        {
            "bench": "clinical",
            "patients": Patient.objects.count(),
            "observations_estimate": observations,
            "load": load,
            "database_layer": database,
            "deep_history": {"patients": len(deep_ids), "days": args.deep_days, "queries": deep},
            "api_end_to_end_uncached": api,
            "request_cpu": cpu,
            "without_designed_indexes": without,
        }
    )


if __name__ == "__main__":
    main()
