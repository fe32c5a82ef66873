"""CPU and memory alerts page for the busiest host: averaged with its idle siblings, a pod about to be
OOM-killed would never fire (real PostgreSQL; the samples are the resource monitor's rows)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import services
from apps.metrics.models import AlertRule
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


def test_one_worker_near_its_memory_limit_beside_idle_ones_fires():
    rule = AlertRule.objects.create(name="Memory", metric="memory_pct", threshold=85, for_seconds=0,
                                    window_minutes=5)  # fmt: skip
    start = timezone.now()
    for i in range(6):  # 3 minutes at 30 s, the task landing on either of three workers
        at = start + timedelta(seconds=30 * i)
        for host, memory in (("worker-a", 97.0), (("worker-b", "worker-c")[i % 2], 30.0)):
            host_sample(host=host, memory=memory, at=at)
            # as the monitor wrote it, a point per host
            services.metric_points_record(values={"host.memory_pct": memory}, at=at)
    [alert] = alerts_evaluate_committed(now=start + timedelta(minutes=3))
    assert alert.rule == rule and alert.value == pytest.approx(97.0)
    assert alert.message.startswith("host memory (%) on worker-a is 97.0")  # the page says which pod


def test_a_single_spike_on_one_host_is_averaged_over_that_hosts_window():
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=80, for_seconds=0, window_minutes=5)
    start = timezone.now()
    for i in range(6):
        host_sample(host="worker-a", cpu=99.0 if i == 0 else 40.0, at=start + timedelta(seconds=30 * i))
    assert alerts_evaluate_committed(now=start + timedelta(minutes=3)) == []
