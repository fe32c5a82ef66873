"""Metrics: what request timing costs, and whether 200 dashboards each get every live snapshot in time.

In one run, on PostgreSQL and Redis:
  * in process: the bare view's CPU with our CSP middleware and with django-csp's; the dashboard's
    24-hour series of 1-minute points read in one query and with a query per step; the SLO reads (1 h, 24 h,
    7 d), a 7-day p95 rule and the dashboard's 7-day latency chart over a week of minute rollups, every row
    merged against hourly merges; the 7-day host chart (CPU, memory) over a sample every 30 s per host, every
    sample against SQL means; with `--day-series-only` alone, a p95 series in day steps over the hourly rollups
    past 30 days, every row against the cached day merges (their first read, merging and storing, and cached);
  * the bare /healthz under gunicorn (2 workers x 16 threads, wrk 16 connections) with the request
    timing middleware and without it (METRICS_REQUEST_TIMING=false), alternating A/B rounds;
  * 200 websocket dashboards (staff sessions) on the live process (uvicorn): for each snapshot the
    process sends (one a second), how many dashboards received it and how late.

Run:  .venv/bin/python bench/metrics.py [--in-process-only | --slo-only [--slo-route-keys N]
                                         | --host-series-only [--host-series-hosts N]
                                         | --day-series-only [--day-series-route-keys N] [--day-series-days N]]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import cpu_us, django_setup, emit, progress, server, wrk, wsgi_get


def middleware_overhead(rounds: int, seconds: int) -> dict:
    """Both servers up at once; each round measures one then the other (which first alternates), and
    the figure is the median of the rounds' ratios, so the machine's drift cancels within a pair."""
    env_with = {**os.environ, "METRICS_REQUEST_TIMING": "true"}
    env_without = {**os.environ, "METRICS_REQUEST_TIMING": "false"}
    with (
        server("wsgi", env=env_with, workers=2, threads=16) as timed,
        server("wsgi", env=env_without, workers=2, threads=16) as plain,
    ):
        for base in (timed, plain):
            wrk(base + "/healthz", seconds=2)
        with_timing, without, ratios = [], [], []
        for n in range(rounds):
            order = [(timed, with_timing), (plain, without)]
            for base, results in order if n % 2 == 0 else order[::-1]:
                results.append(wrk(base + "/healthz", seconds=seconds)["rps"])
            ratios.append(with_timing[-1] / without[-1])
            progress(f"overhead round {n + 1}/{rounds}: with {with_timing[-1]:,.0f}, without {without[-1]:,.0f} req/s")
    ratio = statistics.median(ratios)
    return {
        "with_timing_rps": with_timing,
        "without_timing_rps": without,
        "median_paired_ratio": round(ratio, 3),
        "overhead_pct": round(100 * (1 - ratio), 1),
    }


def bare_cpu_with_other_middleware(middleware: list[str], n: int = 20_000) -> tuple[float, float]:
    """CPU per bare request (/healthz) through Django's WSGI handler with the product's MIDDLEWARE and with
    `middleware` instead, in this process, one thread, alternating: steadier than an HTTP A/B on a noisy
    machine. Medians over the rounds, in microseconds: (product's, other)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from apps.metrics.recorder import recorder

    product = WSGIHandler()
    with override_settings(MIDDLEWARE=middleware):
        other = WSGIHandler()

    def cpu(handler, count: int) -> float:
        return cpu_us(lambda i: wsgi_get(handler, "/healthz"), count)

    ours, theirs = [], []
    for round_number in range(10):  # alternating which goes first, so neither gains from the order
        if round_number % 2:
            theirs.append(cpu(other, n // 10))
            ours.append(cpu(product, n // 10))
        else:
            ours.append(cpu(product, n // 10))
            theirs.append(cpu(other, n // 10))
    recorder.flush()
    return statistics.median(ours), statistics.median(theirs)


def middleware_cost_in_process() -> dict:
    """The request timing middleware: the product's stack against the same without it."""
    from django.conf import settings

    cost, bare = bare_cpu_with_other_middleware(
        [m for m in settings.MIDDLEWARE if not m.endswith("RequestTimingMiddleware")]
    )
    return {"with_timing_cpu_us": round(cost, 1), "without_timing_cpu_us": round(bare, 1),
            "overhead_pct": round(100 * (cost - bare) / bare, 2)}  # fmt: skip


def csp_cost_in_process() -> dict:
    """Our CSP middleware (default headers built once) against django-csp's own (built per response)."""
    from django.conf import settings

    ours, theirs = bare_cpu_with_other_middleware(
        [m.replace("apps.core.csp.CSPMiddleware", "csp.middleware.CSPMiddleware") for m in settings.MIDDLEWARE]
    )
    return {"ours_cpu_us": round(ours, 1), "django_csp_cpu_us": round(theirs, 1),
            "saved_pct": round(100 * (theirs - ours) / theirs, 1)}  # fmt: skip


def series_cost(hours: int = 24) -> dict:
    """The dashboard's longest series (`hours` of 1-minute steps, two routes) as the API reads it, one
    query, against a query per step (what it did before), the same rows, the same process."""
    from datetime import UTC, timedelta

    from apps.metrics import selectors
    from apps.metrics.models import RequestRollup
    from apps.metrics.recorder import new_histogram

    since = datetime(2001, 1, 1, tzinfo=UTC)  # a day of its own, removed afterwards
    until = since + timedelta(hours=hours)
    histogram = new_histogram()
    histogram.record_value(40_000, 100)
    encoded = histogram.encode()
    RequestRollup.objects.bulk_create(
        RequestRollup(minute=since + timedelta(minutes=m), route=route, method="GET", status_class="200",
                      client="bench", count=100, errors=1, total_ms=4000, max_ms=40, histogram=encoded)
        for m in range(hours * 60) for route in ("api/v1/patients/<int:patient_id>/", "fhir/Patient/<id>")
    )  # fmt: skip
    figures = {}
    try:
        for metric in ("rps", "p95_ms"):
            started = time.perf_counter()
            series = selectors.time_series(metric=metric, since=since, until=until, step_seconds=60)
            one_query = time.perf_counter() - started
            started = time.perf_counter()
            for start, _ in series:
                selectors.route_latency(since=start, until=start + timedelta(seconds=60))
            per_step = time.perf_counter() - started
            figures[metric] = {"points": len(series), "one_query_ms": round(one_query * 1000, 1),
                               "query_per_step_ms": round(per_step * 1000, 1),
                               "speedup": round(per_step / one_query, 1)}  # fmt: skip
            progress(f"series of {len(series)} points, {metric}: {one_query * 1000:,.0f} ms, "
                     f"a query per step {per_step * 1000:,.0f} ms")  # fmt: skip
    finally:
        RequestRollup.objects.filter(minute__gte=since, minute__lt=until).delete()
    return figures


def slo_cost(route_keys: int = 4, repeats: int = 3) -> dict:
    """`/api/v1/metrics/slo/`'s reads (1 h, 24 h, 7 d per service) and a 7-day p95 alert rule over a week of
    one-minute rollups for `route_keys` routes (one service each): every row decoded and merged, as before,
    against the cached hourly merges (the first read merging and storing them, then warm reads), the same
    rows, the same process; the figures of both are compared."""
    import random
    from datetime import UTC, timedelta

    from django.utils import timezone

    from apps.metrics import hour_merges, selectors
    from apps.metrics.models import AlertRule, RequestRollup
    from apps.metrics.recorder import new_histogram
    from apps.services.models import Service

    rng = random.Random(11)  # reproducible latencies
    encoded = []
    for _ in range(64):  # a decode costs the same whatever its counts: a few shapes, cycled
        histogram = new_histogram()
        for _ in range(30):
            histogram.record_value(rng.randint(2_000, 2_500_000), rng.randint(1, 20))
        encoded.append((histogram.encode(), histogram.get_total_count()))
    now = timezone.now().astimezone(UTC)
    first = now.replace(second=0, microsecond=0) - timedelta(days=7, minutes=30)
    minutes = int((now - first).total_seconds() // 60) + 1
    prefix = "bench/slo/"
    RequestRollup.objects.filter(route__startswith=prefix).delete()
    Service.objects.filter(slug__startswith="bench-slo-").delete()
    services = [
        Service.objects.create(name=f"bench slo {n}", slug=f"bench-slo-{n}", route_prefix=f"{prefix}{n}/")
        for n in range(route_keys)
    ]
    for service in services:
        RequestRollup.objects.bulk_create(
            (RequestRollup(minute=first + timedelta(minutes=m), route=f"{service.route_prefix}<id>", method="GET",
                           status_class="2xx", client="bench", count=encoded[m % 64][1], errors=m % 3,
                           histogram=encoded[m % 64][0]) for m in range(minutes)),
            batch_size=2000,
        )  # fmt: skip
    rule = AlertRule.objects.create(name="bench slo p95 7d", metric="p95_ms", threshold=500,
                                    window_minutes=7 * 24 * 60, min_requests=1)  # fmt: skip

    def read() -> tuple[float, list]:
        started = time.perf_counter()
        figures = [selectors.slo_status(service, now=now) for service in services]
        figures.append(selectors.alert_rule_value(rule, now=now))
        return time.perf_counter() - started, figures

    def every_row(rows, **_):
        return hour_merges.rows_histogram(rows)

    chart_since = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=7, hours=-1)

    def chart() -> tuple[float, list]:
        """The dashboard's 7-day latency chart of each route key: hour steps from the hour, up to now."""
        started = time.perf_counter()
        points = [
            selectors.time_series(metric=metric, since=chart_since, until=now, step_seconds=3600,
                                  route_prefixes=[service.route_prefix])
            for service in services for metric in ("p50_ms", "p95_ms", "p99_ms")
        ]  # fmt: skip
        return time.perf_counter() - started, points

    def chart_every_row() -> tuple[float, list]:
        settled_hours = hour_merges.settled_hours
        hour_merges.settled_hours = lambda since, until: None
        try:
            return chart()
        finally:
            hour_merges.settled_hours = settled_hours

    try:
        window_histogram = hour_merges.window_histogram
        old_times, cold, warm_times = [], None, []
        chart_old_times, chart_warm_times, same_points = [], [], True
        for n in range(repeats):  # old and warm reads alternate, so the machine's drift falls on both
            hour_merges.window_histogram = every_row
            try:
                seconds, old_figures = read()
            finally:
                hour_merges.window_histogram = window_histogram
            old_times.append(seconds)
            if cold is None:
                cold, cold_figures = read()
            seconds, new_figures = read()
            warm_times.append(seconds)
            progress(f"SLO read {n + 1}/{repeats}: every row {old_times[-1] * 1000:,.0f} ms, hourly merges "
                     f"{warm_times[-1] * 1000:,.0f} ms (the first, merging them: {cold * 1000:,.0f} ms)")  # fmt: skip
            seconds, old_points = chart_every_row()
            chart_old_times.append(seconds)
            seconds, new_points = chart()
            chart_warm_times.append(seconds)
            progress(f"7-day latency chart {n + 1}/{repeats}: every row {chart_old_times[-1] * 1000:,.0f} ms, "
                     f"hourly merges {chart_warm_times[-1] * 1000:,.0f} ms")  # fmt: skip
            same_points = same_points and old_points == new_points
        old, new = statistics.median(old_times), statistics.median(warm_times)
        chart_old, chart_new = statistics.median(chart_old_times), statistics.median(chart_warm_times)
        return {
            "route_keys": route_keys,
            "minute_rows": route_keys * minutes,
            "reads": "slo_status (1h, 24h, 7d) per route key + one 7-day p95 rule over all",
            "old_every_row_ms": round(old * 1000, 1),
            "new_first_read_ms": round(cold * 1000, 1),
            "new_warm_ms": round(new * 1000, 1),
            "ratio_new_over_old": round(new / old, 4),
            "ratio_first_read_over_old": round(cold / old, 3),
            "same_figures": old_figures == new_figures == cold_figures,
            "chart_7d": {
                "reads": "the dashboard's 7-day p50, p95, p99 series (hour steps) per route key",
                "old_every_row_ms": round(chart_old * 1000, 1),
                "new_warm_ms": round(chart_new * 1000, 1),
                "ratio_new_over_old": round(chart_new / chart_old, 4),
                "same_points": same_points,
            },
        }
    finally:
        rule.delete()
        RequestRollup.objects.filter(route__startswith=prefix).delete()
        Service.objects.filter(pk__in=[service.pk for service in services]).delete()


def day_series_cost(route_keys: int = 10, days: int = 120, repeats: int = 3) -> dict:
    """A p95 series in whole-day steps over `days` (the dashboard's year chart: `--day-series-days 365`) with
    hourly rollups for `route_keys` routes past the minute rollups' 30 days (10 keys over 365 days: 80,400 rows):
    every hourly row decoded and merged, as before the day merges, against the day merges kept in the cache,
    read first (merging each day and storing it: its merges deleted before each such read) and once cached, the
    same rows, the same process, alternating; the points of all three compared."""
    import random
    from datetime import UTC, timedelta

    from django.core.cache import cache
    from django.utils import timezone

    from apps.metrics import hour_merges, selectors
    from apps.metrics.models import RequestRollup
    from apps.metrics.recorder import new_histogram

    rng = random.Random(23)  # reproducible latencies
    encoded = []
    for _ in range(64):  # a decode costs about the same whatever its counts: a few shapes, cycled
        histogram = new_histogram()
        for _ in range(120):  # an hour's rollup: more distinct values than a minute's
            histogram.record_value(rng.randint(2_000, 2_500_000), rng.randint(1, 50))
        encoded.append((histogram.encode(), histogram.get_total_count()))
    now = timezone.now().astimezone(UTC)
    since = hour_merges.day_floor(now) - timedelta(days=days)
    hourly_until = hour_merges.day_floor(now) - timedelta(days=30)  # minute rollups are kept 30 days
    hours = max(0, int((hourly_until - since).total_seconds() // 3600))
    prefix = "bench/day-series/"
    RequestRollup.objects.filter(route__startswith=prefix).delete()
    for key in range(route_keys):
        RequestRollup.objects.bulk_create(
            (RequestRollup(resolution=RequestRollup.Resolution.HOUR, minute=since + timedelta(hours=h),
                           route=f"{prefix}{key}/<id>", method="GET", status_class="2xx", client="bench",
                           count=encoded[(h + key) % 64][1], errors=h % 3, histogram=encoded[(h + key) % 64][0])
             for h in range(hours)),
            batch_size=2000,
        )  # fmt: skip
    progress(f"{route_keys * hours:,} hourly rows over {days} days for {route_keys} route keys")

    stored: set[str] = set()
    cache_set_many = hour_merges._cache_set_many

    def remembering(entries: dict) -> None:
        stored.update(entries)
        cache_set_many(entries)

    def series() -> tuple[float, list]:
        started = time.perf_counter()
        points = selectors.time_series(metric="p95_ms", since=since, until=now, step_seconds=86_400,
                                       route_prefixes=[prefix])  # fmt: skip
        return time.perf_counter() - started, points

    def every_row() -> tuple[float, list]:
        days_split = hour_merges.days_split
        hour_merges.days_split = lambda rows, since, until: None
        try:
            return series()
        finally:
            hour_merges.days_split = days_split

    def first_read() -> tuple[float, list]:
        cache.delete_many(list(stored))
        hour_merges._cache_set_many = remembering
        try:
            return series()
        finally:
            hour_merges._cache_set_many = cache_set_many

    try:
        old_times, first_times, cached_times, same_points = [], [], [], True
        for n in range(repeats):  # alternating, so the machine's drift falls on all three
            seconds, old_points = every_row()
            old_times.append(seconds)
            seconds, first_points = first_read()
            first_times.append(seconds)
            seconds, cached_points = series()
            cached_times.append(seconds)
            same_points = same_points and old_points == first_points == cached_points
            progress(f"{days}-day p95 series in day steps {n + 1}/{repeats}: every row {old_times[-1] * 1000:,.0f} ms, "
                     f"day merges first read {first_times[-1] * 1000:,.0f} ms, cached "
                     f"{cached_times[-1] * 1000:,.0f} ms")  # fmt: skip
        old, first, cached = (statistics.median(times) for times in (old_times, first_times, cached_times))
        return {
            "route_keys": route_keys,
            "days": days,
            "hourly_rows": route_keys * hours,
            "reads": f"time_series p95_ms, {days} days, step 86400, over the route keys",
            "old_every_row_ms": round(old * 1000, 1),
            "new_first_read_ms": round(first * 1000, 1),
            "new_cached_ms": round(cached * 1000, 1),
            "ratio_first_read_over_old": round(first / old, 3),
            "ratio_cached_over_old": round(cached / old, 4),
            "same_points": same_points,
            "points": len(cached_points),
        }
    finally:
        cache.delete_many(list(stored))
        RequestRollup.objects.filter(route__startswith=prefix).delete()


def _busiest_host_steps_per_sample(name, steps, since, until, step_seconds, *, serving_only=False):
    """The host series' steps as read before (e8776f9, dbb4f2a): every sample of the range into Python."""
    import math
    from datetime import timedelta

    from apps.resources.models import ResourceSample

    step = timedelta(seconds=step_seconds)
    per_host: dict[tuple[int, str], list] = {}
    rows = ResourceSample.objects.filter(at__gte=since, at__lt=until).exclude(**{f"{name}__isnull": True})
    for at, host, value, measured_at in (
        rows.order_by().values_list("at", "host", name, "measured_at").iterator(chunk_size=5000)
    ):
        if math.isfinite(value):
            acc = per_host.setdefault((int((at - since) // step), host), [0.0, 0, False])
            acc[0] += value
            acc[1] += 1
            acc[2] = acc[2] or measured_at is not None
    published_steps = {i for (i, _), acc in per_host.items() if acc[2]} if serving_only else set()
    values: list[float | None] = [None] * steps
    for (i, _), (total, count, published) in per_host.items():
        if i in published_steps and not published:
            continue
        if values[i] is None or total / count > values[i]:
            values[i] = total / count
    return values


def host_series_cost(hosts: int = 5, days: int = 7, repeats: int = 3) -> dict:
    """The dashboard's 7-day host chart (cpu_pct and memory_pct, hourly steps) over a sample every 30 s per
    host (a worker sampling itself, the other hosts api pods publishing): every sample streamed into Python,
    as before, against the means per step and host from the database, the same rows, the same process,
    alternating; the points of both compared."""
    import random
    from datetime import UTC, timedelta

    from apps.metrics import selectors
    from apps.resources.models import ResourceSample

    rng = random.Random(17)
    since = datetime(2001, 3, 1, tzinfo=UTC)  # a week of its own, removed afterwards
    until = since + timedelta(days=days)
    names = [f"bench-host-{n}" for n in range(hosts)]
    ResourceSample.objects.filter(host__in=names).delete()
    at_field = ResourceSample._meta.get_field("at")
    at_field.auto_now_add = False  # each sample its own `at`
    try:
        for n, host in enumerate(names):
            ResourceSample.objects.bulk_create(
                (ResourceSample(host=host, at=since + timedelta(seconds=s + n), measured_at=None if n == 0 else
                                since + timedelta(seconds=s), cpu_pct=round(rng.uniform(5, 95), 1),
                                memory_pct=round(rng.uniform(20, 90), 1), disk_pct=40.0)
                 for s in range(0, days * 86400, 30)),
                batch_size=5000,
            )  # fmt: skip
    finally:
        at_field.auto_now_add = True
    sql_steps = selectors._busiest_host_steps

    def chart() -> tuple[float, list]:
        started = time.perf_counter()
        points = [selectors.time_series(metric=metric, since=since, until=until, step_seconds=3600)
                  for metric in ("cpu_pct", "memory_pct")]  # fmt: skip
        return time.perf_counter() - started, points

    try:
        old_times, new_times = [], []
        for n in range(repeats):  # alternating, so the machine's drift falls on both
            selectors._busiest_host_steps = _busiest_host_steps_per_sample
            try:
                seconds, old_points = chart()
            finally:
                selectors._busiest_host_steps = sql_steps
            old_times.append(seconds)
            seconds, new_points = chart()
            new_times.append(seconds)
            progress(f"7-day host chart {n + 1}/{repeats}: every sample {old_times[-1] * 1000:,.0f} ms, "
                     f"per step and host in SQL {new_times[-1] * 1000:,.0f} ms")  # fmt: skip
        old, new = statistics.median(old_times), statistics.median(new_times)
        pairs = [(a[1], b[1]) for old_series, new_series in zip(old_points, new_points, strict=True)
                 for a, b in zip(old_series, new_series, strict=True)]  # fmt: skip
        return {
            "hosts": hosts,
            "samples": ResourceSample.objects.filter(host__in=names).count(),
            "reads": f"time_series cpu_pct + memory_pct, {days} days, step 3600",
            "old_every_sample_ms": round(old * 1000, 1),
            "new_sql_per_step_and_host_ms": round(new * 1000, 1),
            "ratio_new_over_old": round(new / old, 4),
            "same_points": old_points == new_points,
            "points_differing": sum(a != b for a, b in pairs),
            "max_abs_difference": max(abs(a - b) for a, b in pairs),
        }
    finally:
        ResourceSample.objects.filter(host__in=names).delete()


def staff_session_cookie() -> str:
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = get_user_model().objects.get_or_create(username="bench-dashboard", defaults={"is_staff": True})
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


async def dashboards(url: str, cookie: str, count: int, seconds: float) -> dict:
    received: dict[int, list[float]] = {}
    connected = 0
    start = asyncio.Event()

    async def dashboard() -> None:
        nonlocal connected
        headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
        async with websockets.connect(url, additional_headers=headers, open_timeout=30, max_queue=None) as socket:
            connected += 1
            await start.wait()
            deadline = time.time() + seconds
            while time.time() < deadline:
                try:
                    raw = await asyncio.wait_for(socket.recv(), timeout=max(0.01, deadline - time.time()))
                except TimeoutError:
                    break
                message = json.loads(raw)
                if message.get("type") == "snapshot" and "seq" in message:
                    delay = time.time() - datetime.fromisoformat(message["at"]).timestamp()
                    received.setdefault(message["seq"], []).append(delay)

    tasks = [asyncio.create_task(dashboard()) for _ in range(count)]
    while connected < count and not any(t.done() for t in tasks):
        await asyncio.sleep(0.1)
    progress(f"{connected} dashboards connected; listening for {seconds:.0f}s")
    start.set()
    await asyncio.gather(*tasks)
    # Only the snapshots sent wholly inside the window: the first and last may be cut by it.
    sequences = sorted(received)[1:-1]
    delays = [d for seq in sequences for d in received[seq]]
    complete = [seq for seq in sequences if len(received[seq]) == count]
    in_time = [seq for seq in sequences if len(received[seq]) == count and max(received[seq]) <= 1.0]
    ordered = sorted(delays)
    return {
        "dashboards": count,
        "snapshots": len(sequences),
        "snapshots_every_dashboard_received": len(complete),
        "snapshots_every_dashboard_received_within_1s": len(in_time),
        "delay_p50_ms": round(1000 * ordered[len(ordered) // 2], 1) if ordered else None,
        "delay_p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 1) if ordered else None,
        "delay_max_ms": round(1000 * ordered[-1], 1) if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--dashboards", type=int, default=200)
    parser.add_argument("--listen-seconds", type=float, default=15)
    parser.add_argument("--in-process-only", action="store_true",
                        help="Only the in-process figures: middleware and CSP CPU, the series query.")  # fmt: skip
    parser.add_argument(
        "--slo-only",
        action="store_true",
        help="Only the SLO reads and the 7-day latency chart: every row against hourly merges.",
    )
    parser.add_argument("--slo-route-keys", type=int, default=4)
    parser.add_argument("--host-series-only", action="store_true",
                        help="Only the 7-day host chart: every sample against SQL means per step, host.")  # fmt: skip
    parser.add_argument("--host-series-hosts", type=int, default=5)
    parser.add_argument("--day-series-only", action="store_true",
                        help="Only the p95 series in day steps: every hourly row against the cached day merges "
                             "(first read and cached).")  # fmt: skip
    parser.add_argument("--day-series-route-keys", type=int, default=10)
    parser.add_argument("--day-series-days", type=int, default=120,
                        help="The series' length; its hourly rows are those past 30 days (365: 80,400 rows "
                             "for 10 route keys).")  # fmt: skip
    args = parser.parse_args()
    django_setup(args.database_url, args.redis_url)

    figures = {"bench": "metrics"}
    if args.day_series_only:
        progress("a p95 series in day steps: every hourly row against the cached day merges")
        figures["day_series"] = day_series_cost(args.day_series_route_keys, args.day_series_days)
        emit(figures)
        return
    if args.host_series_only:
        progress("the 7-day host chart: every sample in Python against means per step and host in SQL")
        figures["host_series_7d"] = host_series_cost(args.host_series_hosts)
        emit(figures)
        return
    progress("SLO and 7-day alert reads: every minute row against cached hourly merges")
    figures["slo_7d"] = slo_cost(args.slo_route_keys)
    if args.slo_only:
        emit(figures)
        return
    progress("CSP headers: ours (built once) against django-csp's (built per response), in process")
    figures["csp_cost_in_process"] = csp_cost_in_process()
    progress("the metrics series API: one query against a query per step")
    figures["series"] = series_cost()
    progress("the 7-day host chart: every sample in Python against means per step and host in SQL")
    figures["host_series_7d"] = host_series_cost(args.host_series_hosts)
    if args.in_process_only:
        figures["middleware_cost_in_process"] = middleware_cost_in_process()
        emit(figures)
        return
    progress("request timing middleware: A/B against the same server without it")
    figures["middleware_overhead"] = middleware_overhead(args.rounds, args.seconds)
    figures["middleware_cost_in_process"] = middleware_cost_in_process()
    cookie = staff_session_cookie()
    with server("asgi", workers=1) as base:
        url = base.replace("http://", "ws://") + "/ws/metrics/"
        figures["websocket_fanout"] = asyncio.run(dashboards(url, cookie, args.dashboards, args.listen_seconds))
    emit(figures)


if __name__ == "__main__":
    main()
