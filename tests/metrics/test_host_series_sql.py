"""The host series' steps (busiest host per step) are averaged in the database: the same figures as the
per-sample reading they replace, which streamed every 30 s sample of every host into Python (real
PostgreSQL; the same module runs on the embedded SQLite with DATABASE_URL empty)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.metrics import selectors
from apps.resources.models import ResourceSample

pytestmark = pytest.mark.django_db

SINCE = datetime(2026, 11, 20, 8, 17, 43, 123457, tzinfo=UTC)  # not on a whole second: steps are from it
UNTIL = SINCE + timedelta(hours=6, minutes=17)  # the last step is partial
STEPS = (3600, 300, 60, 45, 7, int((UNTIL - SINCE).total_seconds()) + 1)


def _busiest_host_steps_per_sample(name, steps, since, until, index, *, serving_only=False):
    """The reading before (e8776f9, dbb4f2a): every sample of the range into Python, summed per step and host."""
    per_host: dict[tuple[int, str], list] = {}
    rows = ResourceSample.objects.filter(at__gte=since, at__lt=until).exclude(**{f"{name}__isnull": True})
    columns = rows.order_by().values_list("at", "host", name, "measured_at")
    for at, host, value, measured_at in columns.iterator(chunk_size=5000):
        if math.isfinite(value):
            acc = per_host.setdefault((index(at), host), [0.0, 0, False])
            acc[0] += value
            acc[1] += 1
            acc[2] = acc[2] or measured_at is not None
    published_steps = {i for (i, _), acc in per_host.items() if acc[2]} if serving_only else set()
    values: list[float | None] = [None] * steps
    for (i, _), (total, count, published) in per_host.items():
        if i in published_steps and not published:
            continue
        mean = total / count
        if values[i] is None or mean > values[i]:
            values[i] = mean
    return values


@pytest.fixture
def samples_at(monkeypatch):
    """bulk_create with each sample's own `at` (auto_now_add would stamp them all now)."""
    monkeypatch.setattr(ResourceSample._meta.get_field("at"), "auto_now_add", False)

    def create(rows: list[dict]) -> None:
        ResourceSample.objects.bulk_create([ResourceSample(**{"disk_pct": 20.0, **row}) for row in rows])

    return create


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible figures, not a secret


def _figure(rng: random.Random, *, exact: bool) -> float:
    # Multiples of 1/4 sum exactly in any order, so both readings' means are the same float; others may differ
    # in the last bit by the order they were added in (the reading before had no order either).
    return rng.randint(0, 400) / 4 if exact else round(rng.uniform(0, 100), 1)


def _fleet(rng: random.Random, *, exact: bool) -> list[dict]:
    """A worker sampling itself every 30 s (never published), api pods publishing for parts of the range, one
    of them also sampled as its own host for a while, samples on a step's first instant and a microsecond
    before it, figures the monitor leaves empty (pool, connections)."""
    rows = []
    seconds = int((UNTIL - SINCE).total_seconds())
    for n in range(0, seconds, 30):
        at = SINCE + timedelta(seconds=n, microseconds=rng.randint(0, 999_999))
        figures = {name: _figure(rng, exact=exact) for name in ("cpu_pct", "memory_pct", "pool_pct")}
        rows.append({"host": "worker-a", "at": at, **figures, "db_connections_pct": _figure(rng, exact=exact),
                     "disk_pct": _figure(rng, exact=exact)})  # fmt: skip
        if n < seconds * 2 // 3:
            rows.append({"host": "api-1", "at": at + timedelta(seconds=3), "measured_at": at,
                         "cpu_pct": _figure(rng, exact=exact), "memory_pct": _figure(rng, exact=exact),
                         "pool_pct": None if n % 90 == 0 else _figure(rng, exact=exact)})  # fmt: skip
        if seconds // 4 < n < seconds * 3 // 4:
            rows.append({"host": "api-2", "at": at + timedelta(seconds=7), "measured_at": at,
                         "cpu_pct": _figure(rng, exact=exact), "memory_pct": _figure(rng, exact=exact)})  # fmt: skip
        if seconds // 2 < n < seconds // 2 + 1800:  # a pod's publishes and, for a while, its own samples
            rows.append({"host": "api-3", "at": at + timedelta(seconds=11), "measured_at": at if n % 60 else None,
                         "cpu_pct": _figure(rng, exact=exact), "memory_pct": _figure(rng, exact=exact)})  # fmt: skip
    for k in range(1, 7):  # on a step's first instant (steps of an hour, 5 min, 1 min) and just before it
        for at in (SINCE + timedelta(hours=k), SINCE + timedelta(hours=k) - timedelta(microseconds=1)):
            rows.append({"host": "api-edge", "at": at, "measured_at": at, "cpu_pct": 99.5 - k, "memory_pct": 98.0})
    rows.append({"host": "api-edge", "at": SINCE, "measured_at": SINCE, "cpu_pct": 100.0, "memory_pct": 100.0})
    rows.append({"host": "api-edge", "at": UNTIL, "measured_at": UNTIL, "cpu_pct": 100.0, "memory_pct": 100.0})
    return rows


def _both(name: str, step_seconds: int, *, serving_only: bool) -> tuple[list, list]:
    step = timedelta(seconds=step_seconds)
    steps = math.ceil((UNTIL - SINCE) / step)

    def index(at) -> int:
        return int((at - SINCE) // step)

    before = _busiest_host_steps_per_sample(name, steps, SINCE, UNTIL, index, serving_only=serving_only)
    now = selectors._busiest_host_steps(name, steps, SINCE, UNTIL, step_seconds, serving_only=serving_only)
    return before, now


@pytest.mark.parametrize("serving_only", [False, True])
def test_several_hosts_read_the_same_busiest_host_per_step(samples_at, serving_only):
    samples_at(_fleet(_rng(7), exact=True))
    if connection.vendor == "postgresql":  # SQLite stores no NaN (NULL: refused); PostgreSQL keeps both
        samples_at([{"host": "api-1", "at": SINCE + timedelta(minutes=m), "measured_at": SINCE + timedelta(minutes=m),
                     "cpu_pct": value, "memory_pct": value, "pool_pct": value}
                    for m, value in ((5, math.nan), (65, math.inf), (125, -math.inf))])  # fmt: skip
    for name in sorted(selectors.RESOURCE_GAUGES):
        for step_seconds in STEPS:
            before, now = _both(name, step_seconds, serving_only=serving_only)
            assert now == before, (name, step_seconds)
            assert any(value is not None for value in now)


def test_figures_that_do_not_sum_exactly_differ_at_most_in_their_last_bits(samples_at):
    """Tenths (psutil's figures) add up differently in another order: the database's means may differ from
    the per-sample ones in their last bits, and a mean on a rounding tie (52.8875) may then round the other
    way in the API's 3 decimals, as the reading before could between two of its own runs (no row order)."""
    samples_at(_fleet(_rng(11), exact=False))
    for name in ("cpu_pct", "memory_pct"):
        for step_seconds in (3600, 300):
            for serving_only in (False, True):
                before, now = _both(name, step_seconds, serving_only=serving_only)
                assert [value is None for value in now] == [value is None for value in before]
                assert now == pytest.approx(before, rel=1e-12)


def test_the_series_api_reading_answers_as_before(samples_at, monkeypatch):
    """time_series itself (rounded figures, the `host.*` series for steps without samples): the same points."""
    samples_at(_fleet(_rng(3), exact=True))
    sql = selectors._busiest_host_steps

    def per_sample(name, steps, since, until, step_seconds, *, serving_only=False):
        step = timedelta(seconds=step_seconds)
        return _busiest_host_steps_per_sample(
            name, steps, since, until, lambda at: int((at - since) // step), serving_only=serving_only
        )

    for metric in ("cpu_pct", "memory_pct", "pool_pct"):
        for serving_hosts_only in (False, True):
            read = {"metric": metric, "since": SINCE, "until": UNTIL, "step_seconds": 3600,
                    "serving_hosts_only": serving_hosts_only}  # fmt: skip
            now = selectors.time_series(**read)
            monkeypatch.setattr(selectors, "_busiest_host_steps", per_sample)
            before = selectors.time_series(**read)
            monkeypatch.setattr(selectors, "_busiest_host_steps", sql)
            assert now == before, (metric, serving_hosts_only)


def test_one_machine_running_everything_reads_its_own_samples_as_before(samples_at):
    """No pod published (one machine: its pods' publishes are its own host's): its samples, serving or not;
    the busiest of the whole range is busiest_host's over serving_host_samples."""
    rng = _rng(5)
    samples_at([{"host": "laptop", "at": SINCE + timedelta(seconds=n, microseconds=n),
                 "cpu_pct": _figure(rng, exact=True), "memory_pct": _figure(rng, exact=True),
                 "pool_pct": None if n % 300 else 12.5} for n in range(0, 4 * 3600, 30)])  # fmt: skip
    for serving_only in (False, True):
        for step_seconds in (3600, 60, STEPS[-1]):
            for name in ("cpu_pct", "memory_pct", "pool_pct", "db_connections_pct"):
                before, now = _both(name, step_seconds, serving_only=serving_only)
                assert now == before, (name, step_seconds, serving_only)
    [whole] = _both("memory_pct", STEPS[-1], serving_only=True)[1]
    assert whole == selectors.busiest_host("memory_pct", since=SINCE, until=UNTIL, serving_only=True)[1]
