"""The optimizer's scheduled run is deduplicated per schedule (README: "at most once in 12 hours per schedule"),
not per target: two schedules of one target each run, a schedule's second send within 12 h (two beats) runs
nothing, and the admin's "Run selected tasks" (the schedule's name without beat's mark) always runs. Keyed on
the target, schedule B's run and every run by hand within 12 h of the nightly run silently did nothing."""

from __future__ import annotations

import pytest

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(services, "optimization_run_dispatch", lambda run: calls.append(run.pk))
    return calls


def by_beat(schedule: str, **kwargs) -> int:
    """A send as beat makes it: django-celery-beat's schedule name and celery beat's own mark."""
    headers = {"periodic_task_name": schedule, "celery_beat_task": True}
    return tasks.scheduled_run.apply(kwargs=kwargs, headers=headers).get()


def by_hand(schedule: str, **kwargs) -> int:
    """A send as the admin's "Run selected tasks" makes it: the schedule's name only."""
    return tasks.scheduled_run.apply(kwargs=kwargs, headers={"periodic_task_name": schedule}).get()


def test_two_schedules_of_one_target_each_run(dispatched):
    first = by_beat("Database A", target="database")
    second = by_beat("Database B", target="database")
    assert first != second  # was the same run: B's send did nothing
    assert dispatched == [first, second]
    assert by_beat("Database A", target="database") == first  # a second send of A (two beats) runs nothing
    assert by_beat("Database B", target="database") == second
    assert OptimizationRun.objects.count() == 2


def test_a_run_by_hand_runs_after_the_nightly_run(dispatched):
    nightly = by_beat("Nightly optimize", target="all")
    manual = by_hand("Nightly optimize", target="all")
    again = by_hand("Nightly optimize", target="all")
    assert len({nightly, manual, again}) == 3  # was one: "successfully run", and nothing ran
    assert dispatched == [nightly, manual, again]
    assert OptimizationRun.objects.get(pk=manual).requested_by == "schedule: Nightly optimize (run by hand)"
    assert by_beat("Nightly optimize", target="all") == nightly  # the runs by hand are not the nightly run


def test_bad_kwargs_of_a_run_by_hand_still_say_why(dispatched):
    with pytest.raises(ValueError, match="Unknown target"):
        by_hand("Nightly optimize", target="everything")
    assert not dispatched
