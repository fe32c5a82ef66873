"""A run's summary: its latency percentiles are those of its successful requests, checked against numpy
on the raw samples (within HDR's 3 significant digits); its counts and req/s are of every request."""

import numpy as np
import pytest

from apps.benchmarks import analysis

rng = np.random.default_rng(11)
GATES = {"p95_ms": 500.0, "p99_ms": 1000.0, "avg_ms": 300.0, "error_rate_pct": 100.0, "min_rps": 0.0}


def _samples(ok_ms: np.ndarray, failures: int, failure_ms: float = 1.0) -> list[list]:
    """[[seconds since start, latency ms, from intended ms, ok, name]] over 10 s, failures and successes
    interleaved."""
    latencies = [(failure_ms, 0)] * failures + [(float(ms), 1) for ms in ok_ms]
    order = rng.permutation(len(latencies))
    return [[10 * i / len(order), latencies[j][0], latencies[j][0] + 2, latencies[j][1], "card"]
            for i, j in enumerate(order)]  # fmt: skip


def _within_hdr(value: float, raw: np.ndarray, percentile: float) -> bool:
    low, high = np.percentile(raw, percentile, method="lower"), np.percentile(raw, percentile, method="higher")
    return low * 0.999 <= value <= high * 1.001


def test_fast_failures_do_not_make_a_slow_service_pass_its_latency_gates():
    """96% of the requests a 1 ms 503, the rest 900 ms answers: the p95 read 1 ms and passed a 500 ms gate."""
    ok = rng.normal(900, 30, 40)
    summary = analysis.summarize(_samples(ok, failures=960))
    assert summary["requests"] == 1000 and summary["errors"] == 960
    for percentile in analysis.PERCENTILES:
        assert _within_hdr(summary[f"p{percentile}_ms"], ok, percentile), (percentile, summary)
    assert summary["avg_ms"] == pytest.approx(ok.mean(), rel=1e-3)
    assert summary["max_ms"] == pytest.approx(ok.max(), rel=1e-3)
    assert _within_hdr(summary["p95_from_intended_ms"], ok + 2, 95)
    failed = {v["gate"] for v in analysis.verdicts(summary, GATES) if not v["passed"]}
    assert {"p95_ms", "avg_ms"} <= failed


def test_percentiles_match_numpy_on_the_raw_samples():
    ok = rng.lognormal(3, 0.6, 5000)
    summary = analysis.summarize(_samples(ok, failures=250, failure_ms=5000))  # slow timeouts left out too
    for percentile in analysis.PERCENTILES:
        assert _within_hdr(summary[f"p{percentile}_ms"], ok, percentile), (percentile, summary)
    assert sum(count for _, count in analysis.histogram_buckets(_samples(ok, failures=250))) == len(ok)


def test_a_run_whose_every_request_failed_has_no_latency_and_fails_its_latency_gates():
    summary = analysis.summarize(_samples(np.array([]), failures=100))
    assert summary["requests"] == 100 and summary["error_rate_pct"] == 100.0
    assert "p95_ms" not in summary and analysis.histogram_buckets(_samples(np.array([]), failures=100)) == []
    verdicts = {v["gate"]: v for v in analysis.verdicts(summary, GATES)}
    assert verdicts["p95_ms"]["measured"] is None and not verdicts["p95_ms"]["passed"]
    assert not verdicts["avg_ms"]["passed"]


def _shed(second: int, ok_ms: float, share_failed: float, per_second: int = 100) -> list[list]:
    """One second of samples: `share_failed` of them 1 ms 503s (a gateway shedding load), the rest `ok_ms`."""
    failed = int(per_second * share_failed)
    return [[second + i / per_second, 1.0 if i < failed else ok_ms, 1.0 if i < failed else ok_ms, int(i >= failed),
             "card"] for i in range(per_second)]  # fmt: skip


def test_a_spike_shed_with_fast_failures_is_not_read_as_fast_or_recovered():
    """97% of the spike's answers a 1 ms 503: the spike's p95 read 1 ms and the service had "recovered" at
    once, while each request it served took 500 ms until 5 s after the spike."""
    stages = [[10, 10, 10], [20, 40, 40], [30, 10, 40]]
    samples = [row for second in range(10) for row in _shed(second, 10.0, 0.0)]
    samples += [row for second in range(10, 25) for row in _shed(second, 500.0, 0.97)]
    samples += [row for second in range(25, 30) for row in _shed(second, 10.0, 0.0)]
    spike = analysis.spike_recovery(samples, stages)
    assert spike["baseline_p95_ms"] == pytest.approx(10.0)
    assert spike["spike_p95_ms"] == pytest.approx(500.0)
    assert spike["recovery_seconds"] == pytest.approx(5.0)


def test_the_endurance_trend_is_of_the_successful_requests():
    """A growing share of fast failures made a service slowing down read as one getting faster."""
    samples = [row for second in range(300) for row in _shed(second, 10.0 + second / 10, min(0.99, second / 250))]
    trend = analysis.endurance_slope(samples)
    assert trend["p95_slope_ms_per_hour"] > 0, trend


def test_a_service_still_shedding_after_the_spike_has_not_recovered():
    """After the spike, 97% fast 503s for 5 s more while the 3% served took the usual 10 ms: the latency of the
    successes alone read that as recovered at once."""
    stages = [[10, 10, 10], [20, 40, 40], [30, 10, 40]]
    samples = [row for second in range(10) for row in _shed(second, 10.0, 0.0)]
    samples += [row for second in range(10, 20) for row in _shed(second, 500.0, 0.5)]
    samples += [row for second in range(20, 25) for row in _shed(second, 10.0, 0.97)]
    samples += [row for second in range(25, 30) for row in _shed(second, 10.0, 0.0)]
    spike = analysis.spike_recovery(samples, stages)
    assert spike["recovery_seconds"] == pytest.approx(5.0) and spike["baseline_error_rate_pct"] == 0

    # A service that failed 5% of its requests before the spike has recovered when it is back there.
    samples = [row for second in range(10) for row in _shed(second, 10.0, 0.05)]
    samples += [row for second in range(10, 20) for row in _shed(second, 500.0, 0.5)]
    samples += [row for second in range(20, 30) for row in _shed(second, 10.0, 0.05)]
    assert analysis.spike_recovery(samples, stages)["recovery_seconds"] == pytest.approx(0.0)


def test_a_second_at_exactly_the_tolerated_error_rate_counts_as_recovered():
    """No error before the spike tolerates one point more: a second with 1 failure in 100 is at it, yet
    `1 - 99/100` is 0.010000000000000009 in floating point, and the service never recovered (R4's review)."""
    stages = [[10, 10, 10], [20, 40, 40], [40, 10, 40]]
    samples = [row for second in range(10) for row in _shed(second, 10.0, 0.0)]
    samples += [row for second in range(10, 20) for row in _shed(second, 500.0, 0.0)]
    samples += [row for second in range(20, 40) for row in _shed(second, 10.0, 0.01)]
    assert analysis.spike_recovery(samples, stages)["recovery_seconds"] == pytest.approx(0.0)
