"""The runner with real Locust subprocesses against a server of the test's own: each shape's stages,
parsing of Locust's CSVs and our samples, the verdicts, the knee, spike recovery, cancellation."""

import contextlib
import tempfile
import time

import psutil
import pytest

from apps.benchmarks import analysis, runner
from apps.benchmarks.models import BenchmarkPlan
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.slow
GATES = {"p95_ms": 1000.0, "p99_ms": 2000.0, "avg_ms": 500.0, "error_rate_pct": 1.0, "min_rps": 1.0}


def _run(url, stages, *, gate=None, rate_per_user=None, stop=lambda: False):
    return runner.run_locust(base_url=url, requests=REQUESTS, token="t", patients=[], stages=stages,
                             stress_gate=gate, rate_per_user=rate_per_user, should_stop=stop,
                             on_tick=lambda fraction, elapsed: None)  # fmt: skip


def test_stages_of_each_shape():
    plan = BenchmarkPlan(kind="stress", users=5, step_users=5, step_seconds=10, max_users=20, spawn_rate=5)
    assert runner.stages_for(plan) == [[10, 5, 5], [20, 10, 5], [30, 15, 5], [40, 20, 5]]
    plan = BenchmarkPlan(kind="spike", users=4, spike_multiplier=3, duration_seconds=30, spawn_rate=4)
    assert runner.stages_for(plan) == [[10, 4, 4], [20, 12, 12.0], [30, 4, 12.0]]
    assert runner.stages_for(BenchmarkPlan(kind="load", users=7, duration_seconds=60, spawn_rate=7)) == [[60, 7, 7]]


def test_a_load_run_is_parsed_and_judged(sleepy):
    outcome = _run(sleepy.url, [[6, 4, 4]])
    assert outcome.status == "succeeded"
    summary = analysis.summarize(outcome.samples)
    assert summary["requests"] > 100 and summary["errors"] == 0
    assert 10 <= summary["p50_ms"] < 100  # the server sleeps 10 ms
    endpoints = outcome.endpoints
    assert [(e["name"], e["aggregate"]) for e in endpoints] == [("card", False), ("Aggregated", True)]
    # req/s over the load itself: it was divided by the runner's wall time, Locust's start-up and shutdown
    # included (29 req/s reported for Locust's 52 in a 5 s run)
    assert summary["rps"] == pytest.approx(endpoints[-1]["rps"], rel=0.1)
    assert abs(endpoints[0]["requests"] - summary["requests"]) <= 0.02 * summary["requests"]  # users stopping
    assert outcome.timeline[-1]["users"] == 4
    assert all(v["passed"] for v in analysis.verdicts(summary, GATES))
    failing = analysis.verdicts(summary, {**GATES, "p95_ms": 1.0})
    assert [v["gate"] for v in failing if not v["passed"]] == ["p95_ms"]
    assert analysis.histogram_buckets(outcome.samples)


def test_the_open_model_measures_from_the_intended_send_time(sleepy):
    sleepy.delay_ms = 200  # each user is scheduled every 100 ms but each answer takes 200 ms
    outcome = _run(sleepy.url, [[6, 2, 2]], rate_per_user=10)
    summary = analysis.summarize(outcome.samples)
    assert summary["p50_ms"] < 400
    assert summary["p95_from_intended_ms"] > 2 * summary["p95_ms"]  # the backlog a closed model would hide


def test_stress_steps_up_until_a_gate_breaks_and_finds_the_knee(sleepy):
    # Latency grows with concurrency: ~30 ms at 2 users, ~110 at 6, ~230 at 12. The first step keeps 120 ms
    # of headroom under the gate (a CI run once saw its p95 past a 60 ms gate set 40 ms above it).
    sleepy.per_inflight_ms = 20
    stages = [[4, 2, 10], [8, 6, 10], [12, 12, 10], [16, 24, 10]]
    gate = {**GATES, "p95_ms": 150.0, "step_seconds": 4}
    outcome = _run(sleepy.url, stages, gate=gate)
    knee = analysis.stress_knee(outcome.samples, stages, gate)
    assert knee["steps"] and knee["steps"][0]["users"] == 2
    assert outcome.seconds < 16 + 10  # stopped once a step broke the gate, not after every step
    judged = [s for s in knee["steps"] if s["judged"]]
    broken = [i for i, s in enumerate(judged) if s["p95_ms"] > 150 or s["error_rate_pct"] > 1.0]
    inside = judged[: broken[0] if broken else None]
    assert inside, knee["steps"]
    assert knee["knee_rps"] == max(s["rps"] for s in inside)


def test_a_spike_and_its_recovery(sleepy):
    sleepy.per_inflight_ms = 5
    stages = [[4, 2, 2], [8, 12, 12], [14, 2, 12]]
    outcome = _run(sleepy.url, stages)
    spike = analysis.spike_recovery(outcome.samples, stages)
    assert spike["spike_p95_ms"] > spike["baseline_p95_ms"]
    assert spike["recovery_seconds"] is not None and spike["recovery_seconds"] < 6


def test_cancelling_stops_locust_within_seconds(sleepy, tmp_path):
    # Cancelled once the load has run (its first samples are written): Locust's start-up alone can take
    # more than a fixed few seconds on a busy machine, and a run cancelled before it has no samples.
    outcome = runner.run_locust(base_url=sleepy.url, requests=REQUESTS, token="t", patients=[], stages=[[60, 2, 2]],
                                stress_gate=None, rate_per_user=None, on_tick=lambda *_: None, workdir=tmp_path,
                                should_stop=lambda: any(tmp_path.glob("samples-*.jsonl")))  # fmt: skip
    assert outcome.status == "cancelled" and outcome.seconds < 30 and outcome.samples


def test_distributed_mode_runs_a_master_and_worker_processes(sleepy, tmp_path):
    outcome = runner.run_locust(base_url=sleepy.url, requests=REQUESTS, token="t", patients=[], stages=[[6, 4, 4]],
                                stress_gate=None, rate_per_user=None, should_stop=lambda: False,
                                on_tick=lambda *_: None, processes=2, workdir=tmp_path)  # fmt: skip
    assert outcome.status == "succeeded"
    assert len(list(tmp_path.glob("samples-*.jsonl"))) == 2  # both worker processes generated load
    summary = analysis.summarize(outcome.samples)
    assert summary["requests"] > 100 and summary["errors"] == 0
    assert outcome.endpoints[-1]["requests"] > 100  # the master aggregated the workers


def _locusts() -> list[psutil.Process]:
    """This process's Locust children, zombies included (a zombie has a name but no command line)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.name() == "locust":
                found.append(process)
    return found


def test_a_failing_stop_check_leaves_no_locust_running(sleepy):
    """A database error in the run's stop check or progress tick (a PostgreSQL restart mid-run) ended the
    watch with Locust still running: it loaded the target to the end of its run-time with no one to stop or
    record it, and stayed a zombie of the worker afterwards."""

    def stop() -> bool:
        if sleepy.served > 20:
            raise ConnectionError("the database went away")
        return False

    with pytest.raises(ConnectionError):
        _run(sleepy.url, [[60, 2, 2]], stop=stop)
    assert not [p for p in _locusts() if p.status() != psutil.STATUS_ZOMBIE]
    served = sleepy.served
    time.sleep(2)
    assert sleepy.served == served, "Locust kept sending after its runner gave up"
    assert not _locusts()  # reaped too: no zombie left to the worker


def test_a_run_leaves_no_files_behind(sleepy, monkeypatch, tmp_path):
    """Each run left its folder in /tmp for good: the patients drawn, every sample, Locust's log."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = runner.run_locust(base_url=sleepy.url, requests=REQUESTS, token="t", patients=[1, 2], stages=[[5, 2, 2]],
                                stress_gate=None, rate_per_user=None, should_stop=lambda: False,
                                on_tick=lambda *_: None)  # fmt: skip
    assert outcome.status == "succeeded" and outcome.samples and outcome.endpoints and outcome.timeline
    assert list(tmp_path.iterdir()) == []


def test_locust_gets_neither_the_deployments_secrets_nor_its_proxy(sleepy, monkeypatch):
    """Locust inherited the worker's whole environment: the deployment's secrets, and HTTP_PROXY, which
    requests obeys, so every request of the run, bearer token and all, went through the proxy."""
    from tests.benchmarks.support import SleepyServer

    proxy = SleepyServer()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("SECRET_KEY", "a-deployment-secret")
        seen: list[dict] = []

        def stop() -> bool:
            for process in _locusts():
                with contextlib.suppress(psutil.Error):  # one that just quit
                    seen.append(process.environ())
            return False

        outcome = _run(sleepy.url, [[5, 2, 2]], stop=stop)
        assert outcome.status == "succeeded" and sleepy.served > 20
        assert proxy.served == 0
        assert seen and not any("SECRET_KEY" in env or "HTTP_PROXY" in env for env in seen)
        assert all(env["BENCH_TOKEN"] == "t" for env in seen)
    finally:
        proxy.httpd.shutdown()
        proxy.httpd.server_close()


def test_a_request_named_aggregated_is_an_endpoint_like_any_other(sleepy):
    """Endpoints and the timeline told Locust's aggregate row apart by its name alone."""
    requests = [{"name": "Aggregated", "method": "GET", "path": "/card", "weight": 1}]
    outcome = runner.run_locust(base_url=sleepy.url, requests=requests, token="t", patients=[], stages=[[5, 2, 2]],
                                stress_gate=None, rate_per_user=None, should_stop=lambda: False,
                                on_tick=lambda *_: None)  # fmt: skip
    assert [(e["name"], e["method"], e["aggregate"]) for e in outcome.endpoints] == [
        ("Aggregated", "GET", False),
        ("Aggregated", "", True),
    ]
    seconds = [point["t"] for point in outcome.timeline]
    assert seconds and len(seconds) == len(set(seconds))  # one point a second


def test_a_stats_file_cut_short_is_read_without_its_last_row(tmp_path):
    stats = tmp_path / "run_stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
        "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,90%,95%,99%\n"
        "GET,card,10,0,5,5.5,1,9,2,3.3,0,5,8,9,9\n"
        ",Aggregated,10"
    )
    assert [row["name"] for row in analysis.parse_stats(stats)] == ["card"]


def test_the_stress_gate_judges_each_step_by_its_own_errors(sleepy):
    """The stress gate read the error ratio since the test's start: a cold start's 40 errors (1.7% of the
    first step, all in its first second) stopped the test at its first step, though the step's last 10 s
    had none; the same sum hid a late step's errors under thousands of earlier successes."""
    sleepy.fail_first = 40
    stages = [[14, 2, 10], [28, 3, 10]]
    gate = {**GATES, "p95_ms": 1000.0, "error_rate_pct": 1.0, "step_seconds": 14}
    outcome = _run(sleepy.url, stages, gate=gate)
    assert sum(1 for s in outcome.samples if not s[3]) == 40
    assert max(s[0] for s in outcome.samples) > 16, "stopped after its first step"
