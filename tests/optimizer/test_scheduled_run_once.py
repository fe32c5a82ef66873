"""The nightly `optimize all` schedule sent twice (two beats while an evicted pod terminates beside its
replacement) makes one run: two sends taken at once by two workers (threads here, each with its own database
connection) each found no run yet and both measured, and with apply both changed, the same figures."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(services, "optimization_run_dispatch", lambda run: calls.append(run.pk))
    return calls


def _at_once(work, count: int = 2) -> list:
    barrier, results, errors = threading.Barrier(count, timeout=30), [], []

    def one() -> None:
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


def test_two_sends_taken_at_once_make_one_run(dispatched):
    results = _at_once(lambda: tasks.scheduled_run(target="all"))
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
