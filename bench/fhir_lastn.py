"""FHIR `Observation/$lastn`'s rows on PostgreSQL: the LATERAL probe per code against the REST API's DISTINCT ON.

Loads N synthetic patients with D days of history into its own database (once: a later run reuses them), then
times, alternately on the same sampled patients (one of each in turn, so a noisy moment hits both):
  * `newest_observations_per_code(per_code=1)` (what $lastn runs) against `latest_observations` (latest=true's
    DISTINCT ON over the patient's rows): the same rows, so the ratio is what the probe buys;
  * `per_code=5` against the same newest 5 by a window function (ROW_NUMBER() OVER (PARTITION BY code)), the
    other one-statement way to ask it;
and names the index each plan reads (EXPLAIN).

Run:  .venv/bin/python bench/fhir_lastn.py --patients 300 --days 60
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import alternated, emit, patient_sample_args, percentiles, progress, sampled_patients


def _indexes(run, patient_id: int) -> list[str]:
    """The indexes the plan of the statement `run(patient_id)` sends reads (EXPLAIN)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        run(patient_id)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries.captured_queries[-1]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return sorted(set(re.findall(r"using (\w+)", plan)))


def main() -> None:
    args = patient_sample_args(
        __doc__,
        database_url="postgres://postgres@127.0.0.1:5432/cp_bench_lastn",
        patients=300,
        days=60,
        days_help="Days of history (a longer one favours the probe).",
        repeat=2000,
        repeat_help="Sampled patients per pair.",
    )
    loaded_in, sample = sampled_patients(args)
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    from apps.clinical import selectors

    vitals = {"categories": ["vital-signs"]}

    def lastn(per_code: int):
        return lambda pid: selectors.newest_observations_per_code(patient_id=pid, per_code=per_code, **vitals)

    def distinct_on(pid: int) -> list:
        """`latest=true`'s DISTINCT ON shape over `$lastn`'s rows (the search's: empty panels kept)."""
        readings = selectors.lastn_readings(patient_id=pid, **vitals)
        return list(readings.order_by("code", "-effective_at", "-id").distinct("code"))

    def window(pid: int) -> list:
        ranked = selectors.lastn_readings(patient_id=pid, **vitals).annotate(
            rank=Window(RowNumber(), partition_by=F("code"), order_by=[F("effective_at").desc(), F("id").desc()])
        )
        return list(ranked.filter(rank__lte=5).order_by("code", "-effective_at", "-id"))

    probe = sample[0]
    assert [o.pk for o in lastn(1)(probe)] == [o.pk for o in distinct_on(probe)], "not the same rows"
    assert [o.pk for o in lastn(5)(probe)] == [o.pk for o in window(probe)], "not the same rows"
    for run in (lastn(1), distinct_on, lastn(5), window):  # every sampled row read once before timing
        for pid in set(sample):
            run(pid)
    progress(f"timing {args.repeat} patients, each pair alternated")
    latest_probe, latest_distinct = alternated(lastn(1), distinct_on, sample)
    five_probe, five_window = alternated(lastn(5), window, sample)

    def median(samples: list[int]) -> float:
        return sorted(samples)[len(samples) // 2]

    emit(
        {
            "patients": args.patients,
            "days": args.days,
            "load_seconds": loaded_in,
            "max_1": {
                "lateral": percentiles(latest_probe),
                "distinct_on": percentiles(latest_distinct),
                "median_ratio_distinct_on_over_lateral": round(median(latest_distinct) / median(latest_probe), 2),
                "indexes": {"lateral": _indexes(lastn(1), probe), "distinct_on": _indexes(distinct_on, probe)},
            },
            "max_5": {
                "lateral": percentiles(five_probe),
                "window": percentiles(five_window),
                "median_ratio_window_over_lateral": round(median(five_window) / median(five_probe), 2),
                "indexes": {"lateral": _indexes(lastn(5), probe), "window": _indexes(window, probe)},
            },
        }
    )


if __name__ == "__main__":
    main()
