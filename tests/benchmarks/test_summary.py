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
