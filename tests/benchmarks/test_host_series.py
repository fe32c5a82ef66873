"""An endurance run's memory trend of its target, served here: one request-serving pod's samples, never a
blend with the worker's, where the load generator runs (real PostgreSQL; the samples as the monitor stores
them)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan
from apps.resources.models import ResourceSample
from apps.resources.tasks import _series_record
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _sample(host: str, at, *, memory: float, published: bool) -> None:
    """A sample as the monitor records it, and a point of its own in `host.memory_pct`, as the monitor wrote
    them before it wrote each run's busiest host."""
    sample = ResourceSample.objects.create(
        host=host, cpu_pct=10.0, memory_pct=memory, disk_pct=10.0, measured_at=at if published else None
    )
    ResourceSample.objects.filter(pk=sample.pk).update(at=at)  # `at` is auto_now_add
    sample.at = at
    _series_record(sample)


@pytest.fixture
def run():
    service, _ = service_ensure(slug="card", name="Card", base_url="http://127.0.0.1:9", route_prefix="card/")
    plan = BenchmarkPlan.objects.create(
        name="card soak", service=service, kind=BenchmarkPlan.Kind.ENDURANCE, users=1, spawn_rate=1,
        duration_seconds=600, requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    run.started_at = timezone.now() - timedelta(minutes=20)
    return run


def test_the_targets_memory_trend_is_a_serving_pods_not_the_load_generators(run):
    """The worker, whose Locust grows from 50% to 95% of its memory over the run, beside a flat api pod at 60%:
    the blended series rose about 300% per hour, a leak the target does not have. The api pod's samples:
    flat."""
    for n in range(10):
        at = run.started_at + timedelta(seconds=30 * n + 5)
        _sample("worker-a", at, memory=50.0 + 5 * n, published=False)
        _sample("api-1", at + timedelta(seconds=2), memory=60.0, published=True)
    memory = services._target_memory(run, 600)
    assert memory["memory_slope_pct_per_hour"] == 0.0 and not memory["significant"]
    assert memory["host"] == "api-1" and memory["samples"] == 10


def test_a_leaking_pod_is_its_own_slope_not_halved_by_an_idle_one(run):
    """A leaking api pod (2% more every 30 s: 240% per hour) beside an idle one at 30% read half of it
    blended; one pod's samples are its own trend, the busiest pod's."""
    for n in range(10):
        at = run.started_at + timedelta(seconds=30 * n + 5)
        _sample("api-1", at, memory=40.0 + 2 * n, published=True)
        _sample("api-2", at + timedelta(seconds=1), memory=30.0, published=True)
    memory = services._target_memory(run, 600)
    assert memory["memory_slope_pct_per_hour"] == pytest.approx(240.0, rel=0.01) and memory["significant"]
    assert memory["host"] == "api-1" and memory["samples"] == 10


def test_one_machine_running_every_process_is_read_from_its_own_samples(run):
    """No pod published (one host: its processes' publishes are its own): the host's own samples are all
    there is of the machine that serves."""
    for n in range(4):
        _sample("laptop", run.started_at + timedelta(seconds=30 * n + 5), memory=70.0 + n, published=False)
    memory = services._target_memory(run, 600)
    assert memory["host"] == "laptop" and memory["samples"] == 4
