"""Recommendations are per host, resolve with hysteresis after a calm run, ignore missing figures and are
pruned once long resolved (real PostgreSQL)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.resources import services, tasks
from apps.resources.models import ResourceRecommendation, ResourceSample
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db

THRESHOLDS = {"cpu": 70.0, "memory": 80.0, "disk": 90.0, "pool": 90.0, "redis_memory": 90.0}


@pytest.fixture(autouse=True)
def _thresholds():
    with use_thresholds(THRESHOLDS):
        yield


def _sample(host: str = "worker-a", cpu: float = 10.0, **figures) -> ResourceSample:
    values = {"memory_pct": 40, "disk_pct": 40, "db_connections_pct": 10, "pool_pct": 10, **figures}
    sample = ResourceSample.objects.create(host=host, cpu_pct=cpu, **values)
    services.recommendations_update(sample=sample)
    return sample


def _cpu(**filters):
    return ResourceRecommendation.objects.filter(kind="cpu", **filters)


def test_a_cpu_hovering_around_its_threshold_is_one_open_recommendation():
    for i in range(20):  # 10 minutes at 30 s: 71, 69, 71, 69...
        _sample(cpu=71 if i % 2 == 0 else 69)
    [cpu] = _cpu()
    assert cpu.status == "open" and cpu.occurrences == 10


def test_it_resolves_only_after_a_calm_run_under_the_recovery_level():
    _sample(cpu=80)
    below = 70 * services.RECOVER_FACTOR - 1
    for _ in range(services.RECOVER_SAMPLES - 1):
        _sample(cpu=below)
    _sample(cpu=65)  # under the threshold, over the recovery level: the calm run starts over
    assert _cpu().get().calm_samples == 0
    for _ in range(services.RECOVER_SAMPLES - 1):
        _sample(cpu=below)
    assert _cpu().get().status == "open"
    _sample(cpu=below)
    [cpu] = _cpu()
    assert cpu.status == "resolved" and cpu.resolved_at is not None and cpu.occurrences == 1


def test_each_host_has_its_own_recommendation():
    for i in range(20):  # the monitor lands on either worker: one host saturated, the other idle
        _sample(host="worker-a" if i % 2 == 0 else "worker-b", cpu=95 if i % 2 == 0 else 5)
    [cpu] = _cpu()
    assert (cpu.host, cpu.status, cpu.occurrences) == ("worker-a", "open", 10)
    _sample(host="worker-b", cpu=96)
    assert sorted(_cpu(status="open").values_list("host", flat=True)) == ["worker-a", "worker-b"]


def test_a_figure_the_sample_lacks_neither_opens_nor_resolves():
    _sample(redis_memory_bytes=95, redis_maxmemory_bytes=100)
    for _ in range(services.RECOVER_SAMPLES + 2):  # Redis unreachable: no figures
        _sample(redis_memory_bytes=None, redis_maxmemory_bytes=None, pool_pct=None, db_connections_pct=None)
    [redis] = ResourceRecommendation.objects.filter(kind="redis_memory")
    assert redis.status == "open" and redis.calm_samples == 0
    assert not ResourceRecommendation.objects.filter(kind__in=["pool", "db_connections"]).exists()


def test_the_monitor_prunes_recommendations_resolved_long_ago():
    now = timezone.now()
    _old, recent, still_open = (
        ResourceRecommendation.objects.create(kind=kind, host="worker-a", metric="cpu_pct", value=90, threshold=70,
                                              message="m", status=status, resolved_at=resolved_at)
        for kind, status, resolved_at in [("cpu", "resolved", now - timedelta(days=services.RESOLVED_KEEP_DAYS + 1)),
                                          ("memory", "resolved", now - timedelta(days=1)), ("disk", "open", None)]
    )  # fmt: skip
    ResourceRecommendation.objects.filter(pk=still_open.pk).update(first_seen=now - timedelta(days=90))
    with use_thresholds(dict.fromkeys(THRESHOLDS, 101.0)):
        tasks.monitor()
    assert set(ResourceRecommendation.objects.values_list("pk", flat=True)) == {recent.pk, still_open.pk}


def test_a_host_gone_for_an_hour_has_its_open_recommendations_resolved():
    """Pods get new names on every rollout: the old pod's open recommendation was never sampled again, so it
    stayed open for ever beside the new pod's."""
    _sample(host="worker-7f9c-old", cpu=95)
    _sample(host="worker-7f9c-recent", cpu=95)
    ResourceSample.objects.filter(host="worker-7f9c-old").update(at=timezone.now() - timedelta(hours=2))
    ResourceSample.objects.filter(host="worker-7f9c-recent").update(at=timezone.now() - timedelta(minutes=50))
    with use_thresholds(dict.fromkeys(THRESHOLDS, 101.0)):
        tasks.monitor()  # a sample of this host, the one still running
    gone = _cpu(host="worker-7f9c-old").get()
    assert gone.status == "resolved" and gone.resolved_at is not None
    assert gone.message.startswith("Resolved: worker-7f9c-old stopped reporting")
    assert _cpu(host="worker-7f9c-recent").get().status == "open"  # unsampled 50 minutes: maybe just unlucky


def test_a_full_disk_names_the_volume_measured_not_the_database_it_cannot_see(settings):
    """The figure is VAR_DIR's volume on the sampled host; the advice sent operators to PostgreSQL's WAL and
    audit partitions, on another server whose disk nothing here measures."""
    _sample(host="api-7d9f-x2", disk_pct=95)
    [disk] = ResourceRecommendation.objects.filter(kind="disk")
    assert str(settings.VAR_DIR) in disk.message and "api-7d9f-x2" in disk.message
    assert "WAL" not in disk.message and "PostgreSQL's disk is not measured here" in disk.message


def test_postgresql_and_redis_are_one_recommendation_whichever_workers_sample_them():
    """PostgreSQL's connections and Redis's memory are one server's figures, read by whichever worker runs
    the monitor: each worker opened its own (four workers, four 'Redis memory at 95%' rows for one Redis),
    and a replaced worker's was resolved as gone while Redis was still full."""
    for host in ("worker-a", "worker-b", "worker-c"):
        _sample(host=host, db_connections_pct=95, redis_memory_bytes=95, redis_maxmemory_bytes=100)
    for kind in ("db_connections", "redis_memory"):
        [shared] = ResourceRecommendation.objects.filter(kind=kind)
        assert (shared.host, shared.status, shared.occurrences) == ("", "open", 3)
    ResourceSample.objects.update(at=timezone.now() - timedelta(hours=2))  # every sampling worker replaced
    assert services.recommendations_of_gone_hosts_resolve() == 0
    assert ResourceRecommendation.objects.filter(kind="redis_memory", status="open").count() == 1
