"""A run in which no request succeeded has no latency: the plan's history and `bench run` say so rather than
reading it as the fastest run (p95 0 ms) or printing a blank "None ms"."""

from __future__ import annotations

import re
from io import StringIO

import pytest

from apps.benchmarks.management.commands.bench import Command
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.report import render_plan_report
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    plan = BenchmarkPlan.objects.create(name="nightly", service=service)
    for p95 in (100.0, 110.0):
        summary = {"requests": 100, "errors": 0, "rps": 5, "p95_ms": p95, "p99_ms": p95}
        BenchmarkRun.objects.create(plan=plan, status="succeeded", passed=True, summary=summary)
    # Every request a 503: the summary has counts only; the run ends "succeeded" with its gates failed.
    summary = {"requests": 100, "errors": 100, "error_rate_pct": 100.0, "rps": 5}
    failed = BenchmarkRun.objects.create(plan=plan, status="succeeded", passed=False, summary=summary)
    return plan, failed


def test_the_plan_history_leaves_a_run_without_latency_out_of_its_chart(history):
    plan, _ = history
    page = render_plan_report(plan)
    points = re.search(r'<polyline points="([^"]+)"', page).group(1).split()
    assert len(points) == 2  # the two runs with a p95; the third was drawn on the 0 line, the fastest of all
    assert "<td> ms</td>" not in page and "no successful request" in page


def test_bench_run_prints_no_latency_for_a_run_without_success(history):
    _, failed = history
    command = Command(stdout=StringIO())
    command._print(failed, as_json=False)
    line = command.stdout.getvalue().splitlines()[0]
    assert "None" not in line and "no successful request" in line
