"""The nightly `optimize all` schedule sent twice (two beats while an evicted pod terminates beside its
replacement) makes one run: two sends taken at once by two workers (threads here, each with its own database
connection) each found no run yet and both measured, and with apply both changed, the same figures."""

from __future__ import annotations

import pytest

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(services, "optimization_run_dispatch", lambda run: calls.append(run.pk))
    return calls


def test_two_sends_taken_at_once_make_one_run(dispatched):
    results = at_once(lambda: tasks.scheduled_run(target="all"))
    runs = list(OptimizationRun.objects.values_list("pk", flat=True))
    assert len(runs) == 1
    assert results == [runs[0], runs[0]]  # the second send answers with the run it asked for
    assert dispatched == runs


def test_a_second_send_after_the_first_run_finished_runs_nothing(dispatched):
    first = tasks.scheduled_run(target="all")
    OptimizationRun.objects.filter(pk=first).update(status=OptimizationRun.Status.SUCCEEDED)
    assert tasks.scheduled_run(target="all") == first
    assert OptimizationRun.objects.count() == 1 and dispatched == [first]


def test_other_schedules_and_runs_by_hand_are_not_the_same_run(dispatched):
    by_hand = services.optimization_run_create(target="all", requested_by="operator")
    nightly = tasks.scheduled_run(target="all")
    other = tasks.scheduled_run(target="caching")
    applying = tasks.scheduled_run(target="all", apply=True)
    assert len({by_hand.pk, nightly, other, applying}) == 4
    assert dispatched == [nightly, other, applying]
