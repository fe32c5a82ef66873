"""A plan's nightly schedule sent twice (two beats while an evicted pod terminates beside its replacement)
runs the plan once: two sends taken at once by two workers (threads here, each with its own database
connection), and a second send taken after the first run already ended."""

from __future__ import annotations

import pytest

from apps.benchmarks import services, tasks
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_create
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def executed(monkeypatch) -> list[int]:
    """The runs the task went on to execute (Locust is not started: the run is left as created)."""
    calls: list[int] = []
    monkeypatch.setattr(services, "benchmark_run_execute", lambda *, run_id: calls.append(run_id))
    return calls


def _plan() -> BenchmarkPlan:
    service = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:8000")
    return BenchmarkPlan.objects.create(
        name="triage", service=service, duration_seconds=60,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip


def test_two_sends_taken_at_once_make_one_run(executed):
    plan = _plan()
    results = at_once(lambda: tasks.scheduled_run(plan.pk))
    runs = list(BenchmarkRun.objects.filter(plan=plan).values_list("pk", flat=True))
    assert len(runs) == 1
    assert sorted(results, key=lambda r: r is None) == [runs[0], None]
    assert executed == runs


def test_a_second_send_after_the_first_run_ended_runs_nothing(executed):
    """Before, the first run's end (a fast failure, or the second send queued behind the night's runs) let the
    second send start the plan again: RunInProgress only guards a run still pending or running."""
    plan = _plan()
    first = tasks.scheduled_run(plan.pk)
    BenchmarkRun.objects.filter(pk=first).update(status=BenchmarkRun.Status.FAILED)
    assert tasks.scheduled_run(plan.pk) is None
    assert list(BenchmarkRun.objects.filter(plan=plan).values_list("pk", flat=True)) == [first]
    assert executed == [first]


def test_a_run_started_by_hand_does_not_stand_for_the_schedules(executed):
    plan = _plan()
    by_hand = services.benchmark_run_create(plan=plan, requested_by="operator")
    BenchmarkRun.objects.filter(pk=by_hand.pk).update(status=BenchmarkRun.Status.SUCCEEDED)
    scheduled = tasks.scheduled_run(plan.pk)
    assert scheduled is not None and scheduled != by_hand.pk
