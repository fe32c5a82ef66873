"""FHIR `Patient/[id]/$everything` against the four requests a clinical app makes today to open a chart.

Loads N synthetic patients with D days of history into its own database (once: a later run reuses them), then
times, through Django's WSGI handler in this process (no network: the server's work alone), on the same sampled
patients, alternated (one of each in turn, so a noisy moment hits both):
  * `GET Patient/<id>/$everything?_count=1000` (one request);
  * `GET Patient/<id>`, then `Observation`, `Encounter` and `MedicationRequest?patient=<id>&_count=1000` (four
    requests, timed together: what the client waits for);
with the cache layer on (every sampled chart read once before timing: the operation's pages and the patient's
card are hits; the searches are not cached) and off (every request a miss). Both sides serve the same resources
(checked first). Rate limits are lifted for the run and restored after.

Run:  .venv/bin/python bench/fhir_everything.py --patients 50 --days 7 --repeat 200
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import (
    alternated,
    clinician_token,
    emit,
    patient_sample_args,
    percentiles,
    policies,
    progress,
    sampled_patients,
    wsgi_get,
)

SEARCHES = ("Observation", "Encounter", "MedicationRequest")


def _summary(everything_ns: list[int], separate_ns: list[int]) -> dict:
    """Latencies of each side, charts per second (one thread, back to back) and the ratios, separate over one."""
    one, four = percentiles(everything_ns), percentiles(separate_ns)
    one_rate = len(everything_ns) / (sum(everything_ns) / 1e9)
    four_rate = len(separate_ns) / (sum(separate_ns) / 1e9)
    return {
        "everything": {**one, "charts_per_s": round(one_rate, 1), "requests_per_chart": 1},
        "four_requests": {**four, "charts_per_s": round(four_rate, 1), "requests_per_chart": 4},
        "ratio_p50_four_over_everything": round(four["p50_ms"] / one["p50_ms"], 2),
        "ratio_p99_four_over_everything": round(four["p99_ms"] / one["p99_ms"], 2),
        "ratio_charts_per_s_everything_over_four": round(one_rate / four_rate, 2),
    }


def main() -> None:
    args = patient_sample_args(
        __doc__,
        database_url="postgres://postgres@127.0.0.1:5432/cp_bench_everything",
        patients=50,
        days=7,
        days_help="Days of history (a chart's size grows with it).",
        repeat=200,
        repeat_help="Sampled patients per phase (cached, uncached).",
    )
    loaded_in, sample = sampled_patients(args)
    from django.core.wsgi import get_wsgi_application

    from apps.audit.models import AuditEvent

    application = get_wsgi_application()
    auth = {"Authorization": f"Bearer {clinician_token('bench-everything')}"}

    def everything(pid: int) -> list[dict]:
        body = json.loads(wsgi_get(application, f"/fhir/Patient/{pid}/$everything?_count=1000", auth))
        assert [link["relation"] for link in body["link"]] == ["self"], "a chart over 1,000 entries: fewer --days"
        return [entry["resource"] for entry in body.get("entry", [])]

    def separately(pid: int) -> list[dict]:
        found = [json.loads(wsgi_get(application, f"/fhir/Patient/{pid}", auth))]
        for resource_type in SEARCHES:
            body = json.loads(wsgi_get(application, f"/fhir/{resource_type}?patient={pid}&_count=1000", auth))
            assert [link["relation"] for link in body["link"]] == ["self"], "a search over 1,000 entries"
            found += [entry["resource"] for entry in body.get("entry", [])]
        return found

    figures: dict = {"patients": args.patients, "days": args.days, "load_seconds": loaded_in}
    with policies(rate_limit_requests=10**9):
        for phase, enabled in (("cached", True), ("uncached", False)):
            with policies(cache=enabled):
                probe = sample[0]
                assert everything(probe) == separately(probe), "not the same resources"
                for pid in set(sample):  # every sampled chart read once before timing (cached: the hits)
                    everything(pid)
                    separately(pid)
                progress(f"{phase}: timing {args.repeat} charts, each pair alternated")
                one, four = alternated(everything, separately, sample)
                last = AuditEvent.objects.filter(resource_type="Patient", action="search").order_by("-id").first()
                assert last.served_from_cache == enabled, f"{phase}: the cache was {'off' if enabled else 'on'}"
                figures[phase] = _summary(one, four)
    figures["entries_per_chart_median"] = sorted(len(everything(pid)) for pid in sample)[len(sample) // 2]
    emit(figures)


if __name__ == "__main__":
    main()
