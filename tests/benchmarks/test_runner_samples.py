"""What the runner makes of the samples files its generator processes leave. A process killed in the middle
of a flush cannot be produced on demand with real Locust (the kill must land inside one write), so a
stand-in executable takes Locust's place and leaves what such a kill leaves: whole lines, then one cut
short. Everything else (the runner, its watch, its folder) is the real one."""

import json
import os
import stat
import sys
import tracemalloc

import numpy as np
import pytest

from apps.benchmarks import analysis, runner
from apps.metrics.recorder import percentile_values

STAND_IN = """#!{python}
import json, os
path = os.environ["BENCH_SAMPLES_FILE"].replace("{{pid}}", str(os.getpid()))
with open(path, "w") as handle:
    for i in range(3):
        handle.write(json.dumps([i * 0.1, 10.0 + i, 10.0 + i, 1, "card"]) + "\\n")
    handle.write('[0.3, 12.5, 12')  # SIGKILLed mid-write
"""


def test_a_sample_cut_short_by_a_kill_costs_that_sample_not_the_run(tmp_path, monkeypatch):
    stand_in = tmp_path / "locust"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(runner, "LOCUST", str(stand_in))
    work = tmp_path / "run"
    work.mkdir()
    outcome = runner.run_locust(base_url="http://127.0.0.1:9", requests=[{"name": "card", "path": "/card"}],
                                token="t", patients=[], stages=[[1, 1, 1]], stress_gate=None, rate_per_user=None,
                                should_stop=lambda: False, on_tick=lambda *_: None, workdir=work)  # fmt: skip
    assert outcome.status == "succeeded", outcome.error
    assert outcome.samples == [[i * 0.1, 10.0 + i, 10.0 + i, 1, "card"] for i in range(3)]
    assert os.listdir(work)  # the stand-in ran in the run's folder


# --- a run with more samples than the runner holds -----------------------------------------------------

QUIET = "#!{python}\n"  # a generator that sends nothing: the test writes the samples files itself
GATES = {"p95_ms": 500.0, "p99_ms": 1000.0, "avg_ms": 300.0, "error_rate_pct": 100.0, "min_rps": 0.0}


def _write_samples(folder, count: int, *, files: int = 2, seed: int = 5) -> list[list]:
    """`count` samples over 100 s, lognormal latencies, 5% fast failures, split over `files` generator
    processes' files (each in its own time order, as a process writes them). Returns them all."""
    rng = np.random.default_rng(seed)
    starts = np.round(np.sort(rng.uniform(0, 100, count)), 3)
    latencies = np.round(rng.lognormal(3, 0.7, count), 3)
    ok = (rng.random(count) >= 0.05).astype(int)
    latencies[ok == 0] = 1.0
    samples = [[float(s), float(ms), float(ms) + 2.0, int(o), "card"] for s, ms, o in zip(starts, latencies, ok)]  # noqa: B905
    for index in range(files):
        lines = "".join(json.dumps(sample) + "\n" for sample in samples[index::files])
        (folder / f"samples-{100 + index}.jsonl").write_text(lines + "[99.9, 1.5, 3")  # the last line cut short
    return samples


def _summary_of_every_sample(samples: list[list]) -> dict:
    """The summary as it was made before the runner bounded its samples: from the whole list at once."""
    seconds = max(s[0] + s[1] / 1000 for s in samples)
    succeeded = [s for s in samples if s[3]]
    errors = len(samples) - len(succeeded)
    latency = analysis.histogram_of([s[1] for s in succeeded])
    intended = analysis.histogram_of([s[2] for s in succeeded])
    return {
        "requests": len(samples), "errors": errors, "error_rate_pct": round(100 * errors / len(samples), 3),
        "rps": round(len(samples) / seconds, 3),
        "avg_ms": round(latency.get_mean_value() / 1000, 3),
        **{f"p{p}_ms": v / 1000 for p, v in percentile_values(latency, analysis.PERCENTILES).items()},
        "max_ms": latency.get_max_value() / 1000,
        **{f"p{p}_from_intended_ms": v / 1000 for p, v in percentile_values(intended, (50, 95, 99)).items()},
    }  # fmt: skip


def _quiet_locust(tmp_path, monkeypatch) -> None:
    stand_in = tmp_path / "locust"
    stand_in.write_text(QUIET.format(python=sys.executable))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(runner, "LOCUST", str(stand_in))


def _run_on_files(tmp_path, monkeypatch, count: int, *, seed: int = 0):
    """A run whose generator left `count` samples: (its outcome, every sample, the runner's peak memory)."""
    _quiet_locust(tmp_path, monkeypatch)
    work = tmp_path / "run"
    work.mkdir(exist_ok=True)
    samples = _write_samples(work, count)
    tracemalloc.start()
    try:
        outcome = runner.run_locust(base_url="http://127.0.0.1:9", requests=[{"name": "card", "path": "/card"}],
                                    token="t", patients=[], stages=[[100, 1, 1]], stress_gate=None,
                                    rate_per_user=None, should_stop=lambda: False, on_tick=lambda *_: None,
                                    workdir=work, seed=seed)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status == "succeeded", outcome.error
    return outcome, samples, peak


def test_below_the_bound_every_sample_is_kept_and_the_summary_is_as_before(tmp_path, monkeypatch, settings):
    settings.BENCHMARK_MAX_SAMPLES = 50_000
    outcome, samples, _ = _run_on_files(tmp_path, monkeypatch, 20_000)
    assert sorted(outcome.samples) == sorted(samples)  # every one (ties in start time in either order)
    assert outcome.samples == sorted(outcome.samples, key=lambda s: s[0])
    assert analysis.summarize(outcome.samples, outcome.totals) == _summary_of_every_sample(samples)
    assert analysis.histogram_buckets(outcome.samples) == analysis.histogram_buckets(samples)


def test_a_run_above_the_bound_keeps_the_bound_with_exact_counts_and_percentiles(tmp_path, monkeypatch, settings):
    """All of a run's samples were read into one list: a day at 1,000 req/s, 86 million samples, tens of GB,
    and the worker was killed for memory. It keeps the bound, a uniform random share in time order; the
    counts, req/s and percentiles are still those of every request."""
    settings.BENCHMARK_MAX_SAMPLES = 1000
    monkeypatch.setattr(analysis.Totals, "BATCH", 1000)
    outcome, samples, peak = _run_on_files(tmp_path, monkeypatch, 50_000, seed=7)
    kept = outcome.samples
    assert len(kept) == 1000 and kept == sorted(kept, key=lambda s: s[0])
    assert peak < 50_000 * 30, peak  # the whole list took ~200 bytes a sample, and the file's text on top
    summary = analysis.summarize(kept, outcome.totals)
    expected = _summary_of_every_sample(samples)
    assert summary == {**expected, "sampled": {"kept": 1000, "of": 50_000}}
    ok = np.array([s[1] for s in samples if s[3]])
    assert summary["errors"] == sum(1 for s in samples if not s[3])
    for percentile in analysis.PERCENTILES:
        low, high = np.percentile(ok, percentile, method="lower"), np.percentile(ok, percentile, method="higher")
        assert low * 0.999 <= summary[f"p{percentile}_ms"] <= high * 1.001, percentile
    # a uniform share: its median and its spread over time are those of the run, within sampling noise
    assert np.median([s[1] for s in kept if s[3]]) == pytest.approx(np.median(ok), rel=0.1)
    assert np.mean([s[0] for s in kept]) == pytest.approx(50, abs=3)
    # the same files and seed give the same share
    again, _ = runner._read_samples(tmp_path / "run", 1000, 7)
    assert again == kept


def test_a_sampled_stress_run_reads_each_steps_req_s_of_every_request(tmp_path, monkeypatch, settings):
    """A step's req/s is its requests over its time: of the kept share alone, it read 1/50 of the load."""
    settings.BENCHMARK_MAX_SAMPLES = 1000
    outcome, samples, _ = _run_on_files(tmp_path, monkeypatch, 50_000)
    stages = [[50, 1, 1], [100, 2, 1]]
    scale = outcome.totals.requests / len(outcome.samples)
    sampled = analysis.stress_knee(outcome.samples, stages, GATES, scale=scale)
    every = analysis.stress_knee(samples, stages, GATES)
    for step, exact in zip(sampled["steps"], every["steps"], strict=True):
        assert step["rps"] == pytest.approx(exact["rps"], rel=0.15)


@pytest.mark.django_db
def test_a_sampled_run_says_so_and_its_figures_are_of_every_request():
    from django.utils import timezone

    from apps.benchmarks import services
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
    from apps.services.services import service_ensure

    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    plan = BenchmarkPlan.objects.create(name="stress", service=service, kind="stress", users=5, step_users=5,
                                        max_users=10, step_seconds=10, spawn_rate=5,
                                        requests=[{"name": "card", "method": "GET", "path": "/card"}])  # fmt: skip
    every = [[20 * i / 10_000, 10.0 + i % 7, 12.0, int(i % 50 != 0), "card"] for i in range(10_000)]
    kept = every[::20]  # a share of 500
    run = services.benchmark_run_create(plan=plan)
    BenchmarkRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    run.refresh_from_db()
    outcome = runner.Outcome("succeeded", 20.0, kept, totals=analysis.Totals.of(every))
    run = services._record(run, outcome, runner.stages_for(plan), plan.gates())
    assert run.status == "succeeded", run.error
    assert run.summary["requests"] == 10_000 and run.summary["errors"] == 200
    assert run.summary["sampled"] == {"kept": 500, "of": 10_000}
    assert "Sampled:" in run.report_html and "500 of its 10000 requests" in run.report_html
    assert [step["rps"] for step in run.findings["stress"]["steps"]] == [pytest.approx(500, rel=0.01)] * 2


def test_reading_a_long_runs_samples_keeps_its_heartbeat(tmp_path, monkeypatch, settings):
    """A day's samples take minutes to read, after the watch's last tick: without a heartbeat meanwhile, the
    checker failed the run as one whose worker had died (HEARTBEAT_STALE_SECONDS) before it was recorded."""
    _quiet_locust(tmp_path, monkeypatch)
    monkeypatch.setattr(runner, "LINES_PER_TICK", 2500)
    ticks = []
    monkeypatch.setattr(runner, "_watch", lambda *args: ("succeeded", 0.0, 1.0))  # no tick of its own
    work = tmp_path / "run"
    work.mkdir()
    _write_samples(work, 20_000)  # two files of 10,000 lines
    runner.run_locust(base_url="http://127.0.0.1:9", requests=[{"name": "card", "path": "/card"}], token="t",
                      patients=[], stages=[[100, 1, 1]], stress_gate=None, rate_per_user=None,
                      should_stop=lambda: False, on_tick=lambda *args: ticks.append(args), workdir=work)  # fmt: skip
    assert ticks == [(1.0, 1.0)] * 8
