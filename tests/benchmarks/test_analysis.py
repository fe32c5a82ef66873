"""The analyses of a run's samples on made-up samples (no Locust): what a figure is read from."""

import pytest

from apps.benchmarks import analysis

GATES = {"p95_ms": 100.0, "error_rate_pct": 1.0}


def _steady(start: float, end: float, rps: float, latency_ms: float = 10.0) -> list[list]:
    count = round((end - start) * rps)
    return [[start + i / rps, latency_ms, latency_ms, 1, "card"] for i in range(count)]


def test_a_step_cut_off_as_it_began_is_no_knee():
    """The gate stopped the run 50 ms into its third step: five requests a few ms apart were read as
    125 req/s, the knee, and the scaling planner took that as a replica's capacity (30 and 60 measured)."""
    stages = [[10, 5, 5], [20, 10, 5], [30, 15, 5]]
    samples = _steady(0, 10, 30) + _steady(10, 20, 60) + [[20 + i / 100, 10.0, 10.0, 1, "card"] for i in range(5)]
    knee = analysis.stress_knee(samples, stages, GATES)
    assert [step["judged"] for step in knee["steps"]] == [True, True, False]
    assert knee["knee_rps"] == 60 and knee["knee_users"] == 10


def test_the_knee_is_found_before_the_first_step_that_broke_a_gate():
    """A step past one that broke the p95 gate (the service already beyond its knee) is no capacity, even
    where a noisy p95 came back under the gate."""
    stages = [[10, 5, 5], [20, 10, 5], [30, 15, 5], [40, 20, 5]]
    samples = _steady(0, 10, 30) + _steady(10, 20, 50, latency_ms=500) + _steady(20, 30, 40) + _steady(30, 40, 90)
    knee = analysis.stress_knee(samples, stages, GATES)
    assert knee["knee_rps"] == 30 and knee["knee_users"] == 5


def test_a_steps_rate_is_over_the_time_it_ran():
    stages = [[10, 5, 5], [20, 10, 5]]
    samples = _steady(0, 10, 30) + _steady(10, 16, 40)  # the run ended 6 s into the second step
    knee = analysis.stress_knee(samples, stages, GATES)
    assert [step["rps"] for step in knee["steps"]] == [30, pytest.approx(40, rel=0.01)]
    assert knee["knee_rps"] == knee["steps"][1]["rps"]


def test_a_cold_starts_errors_do_not_cost_the_step_its_knee():
    """The live gate judges the last 10 s, so a first step with 40 cold-start errors steps on; the knee judged
    the whole step (3% errors against a 1% gate) and was lost: the scaling planner got no capacity."""
    stages = [[30, 5, 5], [60, 10, 5]]
    cold = [[i / 20, 10.0, 10.0, 0, "card"] for i in range(40)]  # two seconds of refusals while it warms up
    samples = cold + _steady(2, 30, 40) + _steady(30, 60, 70)
    knee = analysis.stress_knee(samples, stages, GATES)
    assert knee["steps"][0]["error_rate_pct"] > GATES["error_rate_pct"]  # over the whole step, as reported
    assert knee["steps"][0]["gate_error_rate_pct"] == 0  # over its last 10 s, as the gate judged it
    assert knee["knee_users"] == 10
