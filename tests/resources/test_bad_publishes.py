"""A published entry the monitor cannot use (a NaN or infinite figure, a pool figure missing, a pod figure of the
wrong kind) is dropped with a log line: one such entry failed every monitor run, for every host, until it aged
out. Real Redis and PostgreSQL; the entries are written to the hash as a pod (or something else) would."""

from __future__ import annotations

import json
import logging

import pytest

from apps.resources import pools, tasks
from apps.resources.models import ResourceSample
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db
QUIET = {"cpu": 101.0, "memory": 101.0, "disk": 101.0, "pool": 90.0, "redis_memory": 101.0}
BAD = {
    "api-nan-at": '"at": NaN',
    "api-inf-cpu": '"cpu_pct": Infinity',
    "api-nan-pct": '"pct": NaN',
    "api-no-in-use": '"in_use": null',
    "api-text-memory": '"memory_pct": "60"',
    "api-long-source": '"cpu_source": "cgroup v2 (burstable, throttled)"',
    "api-huge-limit": '"memory_limit_bytes": 1e300',
}


@pytest.fixture(autouse=True)
def _fresh_hash():
    pools._redis().delete(pools.KEY)
    yield
    pools._redis().delete(pools.KEY)


def _entry(host: str) -> dict:
    seconds, microseconds = pools._redis().time()
    return {"host": host, "pid": 12, "at": seconds + microseconds / 1e6, "pct": 95.0, "in_use": 4, "max_size": 16,
            "waiting": 0, "cpu_pct": 55.0, "cpu_source": "cgroup v2", "cpu_limit": 2.0, "memory_pct": 60.0,
            "memory_source": "cgroup v2", "memory_limit_bytes": 3 * 2**30, "disk_pct": 12.0}  # fmt: skip


def _with(host: str, replacement: str) -> str:
    """The host's good entry as JSON with one member replaced by `replacement` (JSON text: NaN is not a dict's)."""
    name = replacement.split(":", 1)[0].strip('"')
    fields = {k: v for k, v in _entry(host).items() if k != name}
    return json.dumps(fields)[:-1] + ", " + replacement + "}"


def test_bad_entries_are_dropped_with_a_log_line_and_the_others_are_still_judged(caplog):
    redis = pools._redis()
    redis.hset(pools.KEY, "api-good:12", json.dumps(_entry("api-good")))
    for host, replacement in BAD.items():
        redis.hset(pools.KEY, f"{host}:12", _with(host, replacement))
    with caplog.at_level(logging.WARNING, logger="apps.resources.pools"), use_thresholds(QUIET):
        tasks.monitor()  # before: ValueError/DataError, the run lost for every host
    assert ResourceSample.objects.filter(host="api-good").exists()
    assert not ResourceSample.objects.filter(host__in=list(BAD)).exists()
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert sorted(message.split()[3] for message in dropped) == sorted(f"{host}:12" for host in BAD)
    assert {field.decode() for field in redis.hkeys(pools.KEY)} == {"api-good:12"}  # deleted once logged


def test_a_pod_without_its_disk_figure_is_judged_by_its_pool_but_not_sampled():
    entry = {k: v for k, v in _entry("api-old-release").items() if k != "disk_pct"}
    pools._redis().hset(pools.KEY, "api-old-release:12", json.dumps(entry))
    with use_thresholds(QUIET):
        tasks.monitor()  # before: the sample's NOT NULL disk_pct failed the whole run
    assert not ResourceSample.objects.filter(host="api-old-release").exists()
    from apps.resources.models import ResourceRecommendation

    assert ResourceRecommendation.objects.filter(kind="pool", host="api-old-release", status="open").exists()


def test_a_pod_entry_without_its_sources_is_sampled_with_the_default_source():
    entry = {k: v for k, v in _entry("api-no-sources").items() if k not in ("cpu_source", "memory_source")}
    pools._redis().hset(pools.KEY, "api-no-sources:12", json.dumps(entry))
    with use_thresholds(QUIET):
        tasks.monitor()  # before: NOT NULL cpu_source failed the whole run
    sample = ResourceSample.objects.get(host="api-no-sources")
    assert (sample.cpu_source, sample.memory_source, sample.cpu_pct) == ("host", "host", 55.0)


def test_an_entry_stamped_far_ahead_or_past_any_date_is_dropped_not_kept_or_failing_the_run():
    redis = pools._redis()
    redis.hset(pools.KEY, "api-good:12", json.dumps(_entry("api-good")))
    redis.hset(pools.KEY, "api-year-big:12", json.dumps({**_entry("api-year-big"), "at": 1e15}))
    redis.hset(pools.KEY, "api-ahead:12", json.dumps({**_entry("api-ahead"), "at": _entry("x")["at"] + 86_400}))
    with use_thresholds(QUIET):
        tasks.monitor()  # before: fromtimestamp(1e15) raised (year out of range), the run lost for every host
    assert set(ResourceSample.objects.filter(measured_at__isnull=False).values_list("host", flat=True)) == {"api-good"}
    assert {field.decode() for field in redis.hkeys(pools.KEY)} == {"api-good:12"}  # forgotten, not kept a day
