"""The adaptive controller takes its signal window on the database's clock, and the resource samples it reads
are stamped with that clock: the task runs on any worker, and one whose clock ran ahead read no recent sample
(no CPU signal: no step, and a tightening lapsed), one behind read old ones. Real PostgreSQL; only this
process's wall clock (django.utils.timezone.now) is skewed, as it would be on another host."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.ratelimits import tasks
from apps.ratelimits.models import RateLimitAdjustment
from apps.resources import services
from apps.resources.models import ResourceSample
from apps.resources.selectors import database_now

pytestmark = pytest.mark.django_db
SKEW = timedelta(minutes=10)


@pytest.fixture
def skew_clock(monkeypatch):
    real_now = timezone.now

    def skew(offset: timedelta) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    return skew


def test_a_worker_whose_clock_runs_ahead_still_reads_the_hosts_recent_cpu(skew_clock):
    ResourceSample.objects.create(host="worker-a", cpu_pct=95.0, memory_pct=10.0, disk_pct=10.0)
    skew_clock(SKEW)  # the worker that runs the controller
    tasks.adapt()
    # before: no sample in its window, no CPU signal, no step
    assert RateLimitAdjustment.objects.filter(policy__scope="audit_logs", direction="tighten").exists()


def test_a_sample_taken_on_a_worker_whose_clock_runs_behind_is_stamped_with_the_databases_clock(skew_clock):
    skew_clock(-SKEW)
    sample = services.resources_sample(cpu_interval=0.01)
    published = services.published_samples_record(
        {
            "api-pod": {
                "host": "api-pod",
                "pid": 1,
                "at": 1.8e9,
                "pct": 10.0,
                "in_use": 1,
                "max_size": 10,
                "waiting": 0,
                "cpu_pct": 20.0,
                "memory_pct": 30.0,
                "disk_pct": 40.0,
            }
        },
        own_host="worker-b",
    )["api-pod"]
    now = database_now()
    for stamped in (sample, published, *ResourceSample.objects.all()):
        # before: ten minutes behind (a generous bound, not a timing one: the skew is 600 s)
        assert abs(stamped.at - now) < timedelta(minutes=2)
