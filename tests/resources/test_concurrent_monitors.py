"""Two monitor runs at once on one host (tasks queued behind a long benchmark run, started together when it
ends) both find no open recommendation and both insert one: the second must re-see the first's, not fail
the task on the one-open-per-host constraint (two real PostgreSQL sessions)."""

import threading
import time

import pytest
from django.db import connections

from apps.resources import services
from apps.resources.models import ResourceRecommendation, ResourceSample
from tests.helpers import behind_an_uncommitted_insert

pytestmark = pytest.mark.django_db(transaction=True)  # two sessions: each commits


def test_the_second_of_two_concurrent_runs_re_sees_the_firsts_recommendation():
    def first_run() -> None:  # the other run: inserts the open row, committed once this run's insert waits on it
        ResourceRecommendation.objects.create(kind="cpu", host="worker-a", metric="cpu_pct", value=91,
                                              threshold=70, message="CPU at 91%")  # fmt: skip

    sample = ResourceSample.objects.create(host="worker-a", cpu_pct=95, memory_pct=10, disk_pct=10)
    with behind_an_uncommitted_insert(first_run):
        [cpu] = [r for r in services.recommendations_update(sample=sample) if r.kind == "cpu"]
    assert ResourceRecommendation.objects.filter(kind="cpu", host="worker-a").count() == 1
    assert (cpu.occurrences, cpu.value) == (2, 95)


def test_two_runs_at_once_record_one_publish_once(monkeypatch):
    """Two monitor tasks at once (a backlog taken by two worker processes) each checked that a pod's publish
    was not recorded yet, then both inserted it: one measurement, two samples (two real PostgreSQL sessions,
    held together after both checks)."""
    entry = {"host": "api-pod-zz", "pid": 12, "at": time.time(), "pct": 25.0, "in_use": 4, "max_size": 16,
             "waiting": 0, "cpu_pct": 55.0, "cpu_source": "cgroup v2", "cpu_limit": 2.0, "memory_pct": 60.0,
             "memory_source": "cgroup v2", "memory_limit_bytes": 3 * 2**30, "disk_pct": 12.0}  # fmt: skip
    both_checked = threading.Barrier(2, timeout=30)
    create = ResourceSample.objects.create

    def create_after_both_checked(**fields):
        both_checked.wait()
        return create(**fields)

    monkeypatch.setattr(ResourceSample.objects, "create", create_after_both_checked)
    recorded, failures = [], []

    def run() -> None:
        try:
            recorded.append(services.published_samples_record({"api-pod-zz": entry}, own_host="worker-zz"))
        except Exception as exc:  # noqa: BLE001 - a run that failed is this test's finding, not its crash
            failures.append(exc)
        finally:
            connections.close_all()

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)

    assert failures == []
    assert ResourceSample.objects.filter(host="api-pod-zz").count() == 1
    assert sorted(result["api-pod-zz"] is None for result in recorded) == [False, True]  # the other: recorded
