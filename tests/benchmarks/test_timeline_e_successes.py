"""The run's "p95 over time" (its timeline, drawn by the HTML report and the run page) was Locust's "95%"
column, failures included: a run of nothing but 503s, whose summary says "no latency", still plotted a p95
of its failures. Each point's p95 is now that of the successful requests answered in its second, None where
there was none, as every other latency figure of a run is."""

from __future__ import annotations

import pytest

from apps.benchmarks import analysis, runner
from tests.benchmarks.support import REQUESTS


def _run(url, stages):
    return runner.run_locust(base_url=url, requests=REQUESTS, token="t", patients=[], stages=stages,
                             stress_gate=None, rate_per_user=None, should_stop=lambda: False,
                             on_tick=lambda fraction, elapsed: None)  # fmt: skip


def test_a_point_has_the_p95_of_its_seconds_successes_only():
    timeline = [{"t": t, "users": 2, "rps": 10.0, "errors_per_s": 0.0, "p95_ms": 999.0} for t in (1, 2, 3)]
    samples = [
        *([0.2, 5.0, 5.0, True, "card"] for _ in range(20)),  # second 1: fast successes...
        *([0.5, 900.0, 900.0, False, "card"] for _ in range(20)),  # ...and slow failures, answered in second 2
        [1.5, 300.0, 300.0, False, "card"],
        *([2.1, 40.0, 40.0, False, "card"] for _ in range(5)),  # second 3: failures only
    ]
    points = analysis.successes_p95(timeline, samples)
    assert [p["p95_ms"] for p in points] == [5.0, None, None]
    assert [(p["t"], p["users"], p["rps"]) for p in points] == [(1, 2, 10.0), (2, 2, 10.0), (3, 2, 10.0)]


@pytest.mark.slow
def test_a_run_of_only_failures_has_no_p95_at_any_point(sleepy):
    sleepy.fail_first = 10**9  # every request a 503 after the usual 10 ms
    outcome = _run(sleepy.url, [[5, 2, 2]])
    assert outcome.samples and not any(sample[3] for sample in outcome.samples)
    assert outcome.timeline, "Locust wrote no history"
    assert [point["p95_ms"] for point in outcome.timeline] == [None] * len(outcome.timeline)


@pytest.mark.slow
def test_a_run_of_successes_still_plots_its_p95(sleepy):
    outcome = _run(sleepy.url, [[5, 2, 2]])
    measured = [point["p95_ms"] for point in outcome.timeline if point["p95_ms"] is not None]
    assert len(measured) >= 2 and all(p >= 10 for p in measured)  # the server sleeps 10 ms
