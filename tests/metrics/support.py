"""Helpers shared by the metrics' tests: traffic recorded as a process records it, the recorder's clock moved
off the database's, the alert evaluation as the beat task runs it, and the resource monitor's samples."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.test import TestCase

from apps.metrics import services
from apps.metrics.recorder import Recorder

VITALS_ROUTE = "api/v1/vitals/<id>/"


def record_traffic(latency_ms: float, *, count: int, status: int, route: str = VITALS_ROUTE) -> None:
    """`count` requests to `route` answered `status` in `latency_ms`, recorded and flushed as a process would."""
    process = Recorder(flush_interval=3600, background=False)
    for _ in range(count):
        process.record(route=route, method="GET", status=status, client="app", elapsed_us=int(latency_ms * 1000))
    process.flush()


# A reading's error is the query's round trip (this host and the database share a machine here): a second of
# slack on each side keeps a request made at a minute's edge from failing, and is far under any shift tested.
SLACK = timedelta(seconds=1)


class ShiftedClock:
    """The `time` module as the recorder sees it, its wall clock `shift` seconds off (monotonic time untouched)."""

    def __init__(self, shift: float):
        self.shift = shift

    def time(self) -> float:
        return time.time() + self.shift

    def __getattr__(self, name: str):
        return getattr(time, name)


def minutes_between(earliest: datetime, latest: datetime) -> set[datetime]:
    """Every minute from the one `earliest` falls in to the one `latest` falls in."""
    minute = (earliest - SLACK).astimezone(UTC).replace(second=0, microsecond=0)
    minutes = set()
    while minute <= latest + SLACK:
        minutes.add(minute)
        minute += timedelta(minutes=1)
    return minutes


def alerts_evaluate_committed(**options):
    """`alerts_evaluate` as the beat task runs it, outside any transaction: each rule's savepoint commits,
    and its pages go out then (on commit). A test's own transaction never commits, so its on-commit
    callbacks are run as the evaluation ends."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.alerts_evaluate(**options)


def host_sample(*, at=None, host: str = "worker-a", cpu: float = 10.0, memory: float = 10.0):
    """A resource monitor sample (the CPU and memory alerts read them, per host)."""
    from django.utils import timezone

    from apps.resources.models import ResourceSample

    sample = ResourceSample.objects.create(host=host, cpu_pct=cpu, memory_pct=memory, disk_pct=10.0)
    ResourceSample.objects.filter(pk=sample.pk).update(at=at or timezone.now())  # `at` is auto_now_add
    return sample


def five_ms_rollup(route: str, minute: datetime, count: int, *, resolution: str = "1m"):
    """An unsaved rollup of `count` GETs of `route` in `minute`, each 5 ms, none failed."""
    from apps.metrics.models import RequestRollup
    from apps.metrics.recorder import new_histogram

    histogram = new_histogram()
    histogram.record_value(5_000, count)
    return RequestRollup(resolution=resolution, minute=minute, route=route, method="GET", status_class="200",
                         client="app", count=count, errors=0, total_ms=5.0 * count, max_ms=5.0,
                         histogram=histogram.encode())  # fmt: skip
