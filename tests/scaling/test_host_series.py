"""The CPU and memory a policy's metrics history forecasts from: the pods that serve requests, each hour's
busiest, never a blend with the worker's samples (real PostgreSQL; the samples as the monitor stores them)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.resources.models import ResourceSample
from apps.resources.tasks import _series_record
from apps.scaling.history import hourly_history
from apps.scaling.services import scaling_policy_ensure
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _sample(host: str, at: datetime, *, cpu: float, memory: float, published: bool) -> ResourceSample:
    """A sample as the monitor records it (a pod's published figures carry their measured_at), and a point
    of its own in the `host.*` series, as the monitor wrote them before it wrote each run's busiest host."""
    sample = ResourceSample.objects.create(
        host=host, cpu_pct=cpu, memory_pct=memory, disk_pct=10.0, measured_at=at if published else None
    )
    ResourceSample.objects.filter(pk=sample.pk).update(at=at)  # `at` is auto_now_add
    sample.at = at
    _series_record(sample)
    return sample


@pytest.fixture
def policy():
    service, _ = service_ensure(slug="clinical-api", name="Clinical API", route_prefix="api/v1/patients/")
    return scaling_policy_ensure(service, history_source="metrics")[0]


def test_the_cpu_and_memory_history_is_the_busiest_serving_pods_not_a_blend_with_the_worker(policy):
    """A worker at 97% of its memory limit (Celery, a benchmark's load generator) beside api pods at 30% and
    50% read 59% from the blended series: a level of no pod the policy scales. Each hour is the busiest pod
    that serves requests."""
    hour = (timezone.now() - timedelta(hours=3)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for minute in (5, 35):
        at = hour + timedelta(minutes=minute)
        _sample("worker-a", at, cpu=95.0, memory=97.0, published=False)
        _sample("api-1", at, cpu=20.0, memory=30.0, published=True)
        _sample("api-2", at, cpu=40.0, memory=50.0, published=True)
    memory = hourly_history(policy, "memory", now=timezone.now())
    cpu = hourly_history(policy, "cpu", now=timezone.now())
    assert list(memory.values) == [50.0]
    assert list(cpu.values) == [40.0]
    assert memory.index[0] == hour


def test_one_machine_running_every_process_is_read_from_its_own_samples(policy):
    """Where no pod published (every process on one host, whose publishes are its own), the host's own
    samples are the machine that serves; an hour with no sample is missing, not 0."""
    hour = (timezone.now() - timedelta(hours=5)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    _sample("laptop", hour + timedelta(minutes=1), cpu=30.0, memory=60.0, published=False)
    _sample("laptop", hour + timedelta(hours=2, minutes=1), cpu=50.0, memory=64.0, published=False)
    memory = hourly_history(policy, "memory", now=timezone.now())
    assert list(memory.values) == [60.0, 64.0]
    assert list(memory.index) == [hour, hour + timedelta(hours=2)]
