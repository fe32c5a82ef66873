"""`bench run --wait` exited 0 when its run missed a gate (only `bench check` exited 1): a CI job running it
passed. Now it exits 1 when the run failed or missed a gate, as `bench check` does."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connections

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from tests.benchmarks.support import drain_benchmarks_queue, queued_plan

pytestmark = pytest.mark.django_db(transaction=True)


def _finish_when_sent(plan: BenchmarkPlan, *, passed: bool) -> threading.Thread:
    """Plays the worker: ends the run the command waits on, with one gate met or missed."""

    def finish() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not BenchmarkRun.objects.filter(plan_id=plan.pk).exists():
                time.sleep(0.1)
            verdict = {"gate": "p95_ms", "measured": 212.863 if not passed else 150.0, "limit": 200, "passed": passed}
            BenchmarkRun.objects.filter(plan_id=plan.pk).update(
                status=BenchmarkRun.Status.SUCCEEDED, passed=passed, verdicts=[verdict],
                summary={"requests": 10, "rps": 1.0, "p95_ms": verdict["measured"], "error_rate_pct": 0},
            )  # fmt: skip
        finally:
            connections.close_all()

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


def test_wait_exits_non_zero_when_the_run_misses_a_gate():
    plan = queued_plan("missed gate")
    finisher = _finish_when_sent(plan, passed=False)
    out = io.StringIO()
    try:
        with pytest.raises(SystemExit) as exited:
            call_command("bench", "run", "missed gate", "--wait", stdout=out, stderr=io.StringIO())
    finally:
        finisher.join(timeout=60)
        drain_benchmarks_queue()
    assert exited.value.code == 1
    assert "FAIL p95_ms: 212.863 (limit 200)" in out.getvalue()


def test_wait_exits_zero_when_every_gate_is_met():
    plan = queued_plan("met gate")
    finisher = _finish_when_sent(plan, passed=True)
    out = io.StringIO()
    try:
        call_command("bench", "run", "met gate", "--wait", "--json", stdout=out, stderr=io.StringIO())
    finally:
        finisher.join(timeout=60)
        drain_benchmarks_queue()
    assert json.loads(out.getvalue())["passed"] is True
