"""Reads of the metrics app: latency and throughput over the per-minute rollups."""

from __future__ import annotations

import functools
import math
import operator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import NotSupportedError
from django.db.models import CharField, Exists, F, Func, IntegerField, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Concat
from django.db.models.lookups import StartsWith
from django.utils import timezone
from hdrh.histogram import HdrHistogram

from apps.core.selectors import probe_long_worker, probe_worker
from apps.metrics import hour_merges
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram, percentile_values
from apps.services.models import Service
from apps.services.selectors import of_visible_services, sees_all_traffic


def routes_under(prefixes: list[str] | None) -> Q:
    """The rollup rows of the routes of the services with these prefixes; None: every route. A route is
    one service's: the service (active or not) with the longest prefix it starts with, so a service under
    `api/v1/` is not credited with (nor shows its viewers) the traffic of one under `api/v1/patients/`,
    which may be hidden from them. A blank prefix names no route (a service served elsewhere), so a
    service without one is never credited with all the traffic. Part of the rows' own query."""
    if prefixes is None:
        return Q()
    wanted = [prefix for prefix in prefixes if prefix]
    routes = Q(pk__in=[])
    for prefix in wanted:
        more_specific = (
            Service.objects.filter(route_prefix__startswith=prefix)
            .exclude(route_prefix__in=wanted)
            .filter(StartsWith(OuterRef("route"), F("route_prefix")))
        )
        routes |= Q(route__startswith=prefix) & ~Exists(more_specific)
    return routes


def route_latency(
    *, route_prefixes: list[str] | None = None, since=None, until=None, exclude_status_classes: tuple[str, ...] = ()
) -> dict:
    """Requests, errors and merged percentiles of the routes under `route_prefixes` (None: all) in a time range."""
    rows = RequestRollup.objects.filter(routes_under(route_prefixes)).exclude(status_class__in=exclude_status_classes)
    if since is not None:
        rows = rows.filter(minute__gte=since)
    if until is not None:
        rows = rows.filter(minute__lt=until)
    # A week's minute rows were each decoded (seconds a call): whole closed hours come merged from the cache.
    merged, count, errors = hour_merges.window_histogram(rows, since=since, until=until)
    return _latency(merged, count, errors)


# The limiter's refusals (their own status class, recorder.status_class): answered in a few ms without serving
# anything, they are no request of the service's. Counted among the requests, 2,000 of them beside 60 served
# (half failing) read as a 1.46% error rate and a 2 ms p95; they are reported apart, as `rate_limited`.
RATE_LIMITED = ("429",)
# The responses the adaptive controller's p95 leaves out (tasks.adapt): it reads how long the service takes to
# serve, and each of these is answered without serving. A 503 is a service shedding load (its own class,
# recorder.status_class); a 4xx is the caller's request refused (a bad or unknown token, no permission, no such
# record, a body that fails validation): answered before the work it asks for, and made at will by any client
# (a flood of made-up tokens), it would hold an overloaded service's p95 down and keep its limit loose.
# Served: 2xx, 3xx and the other 5xx (a failure after the work, or a gateway timeout, is as slow as the work).
NOT_SERVED = ("4xx", "429", "503")


def rate_limited_count(*, route_prefixes: list[str] | None = None, since, until=None) -> int:
    """The requests the limiter refused (429) on the routes under `route_prefixes` (None: all) in a time range."""
    rows = RequestRollup.objects.filter(routes_under(route_prefixes), status_class__in=RATE_LIMITED)
    if since is not None:
        rows = rows.filter(minute__gte=since)
    if until is not None:
        rows = rows.filter(minute__lt=until)
    return int(rows.aggregate(total=Sum("count"))["total"] or 0)


def _latency(merged: HdrHistogram | None, count: int, errors: int) -> dict:
    if not count:
        return {"count": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    values = percentile_values(merged, (50, 95, 99))
    return {
        "count": count,
        "errors": errors,
        "p50_ms": values[50] / 1000,
        "p95_ms": values[95] / 1000,
        "p99_ms": values[99] / 1000,
        "max_ms": merged.get_max_value() / 1000,
    }


def service_p95_ms(
    *, since: datetime, min_requests: int = 1, exclude_status_classes: tuple[str, ...] = ()
) -> dict[int, float]:
    """Each active service's p95 since `since`, from the routes under its `route_prefix`, where it served
    `min_requests` requests or more (below that the "p95" is the slowest few, a cold start on a quiet
    service: no reading); without the responses of `exclude_status_classes` (NOT_SERVED: the refusals answered
    in a few ms without serving)."""
    p95 = {}
    for service in Service.objects.filter(is_active=True).exclude(route_prefix=""):
        latency = route_latency(
            route_prefixes=[service.route_prefix], since=since, exclude_status_classes=exclude_status_classes
        )
        if latency["count"] >= max(min_requests, 1) and latency["p95_ms"] is not None:
            p95[service.pk] = latency["p95_ms"]
    return p95


WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


def latency_judged(count: int) -> bool:
    """Whether `count` requests are enough to judge a service's p95 (and p99) against a target: below
    OPTIMIZER_SERVICE_MIN_REQUESTS the "p95" is the slowest few (a cold start on a quiet service). The one rule
    of the SLO status (the dashboard's met/missed) and of `manage.py optimize`'s service verdicts: the Overview
    read "missed · p95 107479.0 ms" on 2 requests that the optimizer called not measured."""
    return count >= settings.OPTIMIZER_SERVICE_MIN_REQUESTS


def slo_status(service: Service, *, now=None) -> dict:
    """The service's latency and error figures against its targets over 1 h, 24 h and 7 d. Its p95 and p99
    are judged from `min_requests` requests in the window (latency_judged), as the optimizer's are.

    The error budget is the share of allowed errors (slo_error_rate_pct of the requests) not spent yet. The
    figures are of the requests served; the limiter's refusals are counted apart (`rate_limited`). The windows
    end on the database's clock, which stamps the rollups: a reader whose clock ran an hour ahead read an empty
    1 h window.
    """
    from apps.resources.selectors import database_now

    now = now or database_now()
    windows = {}
    for label, span in WINDOWS.items():
        since = now - span
        latency = route_latency(route_prefixes=[service.route_prefix], since=since, exclude_status_classes=RATE_LIMITED)
        count, errors = latency["count"], latency["errors"]
        error_rate_pct = 100 * errors / count if count else None
        allowed = count * service.slo_error_rate_pct / 100
        judged = count > 0 and latency_judged(count)
        windows[label] = {
            **latency,
            "error_rate_pct": round(error_rate_pct, 3) if error_rate_pct is not None else None,
            "latency_judged": judged,
            "p95_met": latency["p95_ms"] <= service.slo_p95_ms if judged else None,
            "p99_met": latency["p99_ms"] <= service.slo_p99_ms if judged else None,
            "error_rate_met": error_rate_pct <= service.slo_error_rate_pct if count else None,
            "error_budget_remaining": _error_budget_remaining(count, errors, allowed),
            "rate_limited": rate_limited_count(route_prefixes=[service.route_prefix], since=since),
        }
    return {
        "service": service.slug,
        "name": service.name,
        "min_requests": settings.OPTIMIZER_SERVICE_MIN_REQUESTS,
        "targets": {
            "p95_ms": service.slo_p95_ms,
            "p99_ms": service.slo_p99_ms,
            "error_rate_pct": service.slo_error_rate_pct,
        },
        "windows": windows,
    }


def _error_budget_remaining(count: int, errors: int, allowed: float) -> float | None:
    """The share of the allowed errors not spent; None without requests. A target of 0% allows none: a window
    with errors has spent it all and one without spent none (it read None, "no data", either way: a service
    failing every request under a zero-error target showed no budget problem)."""
    if not count:
        return None
    if not allowed:
        return 0.0 if errors else 1.0
    return round(max(0.0, 1 - errors / allowed), 4)


def _point_series(series: str, since, until) -> list:
    from apps.metrics.models import MetricPoint

    return list(
        MetricPoint.objects.filter(series=series, at__gte=since, at__lt=until)
        .order_by("at")
        .values_list("at", "sum", "count")
    )


def _cache_series_prefix(namespace: str) -> str:
    """The per-minute cache series of one namespace (`cache.<namespace>.requests`, `.loads`), or of all."""
    return f"cache.{namespace}." if namespace else "cache."


def cache_reads(*, namespace: str = "", since, until) -> tuple[int, int]:
    """Reads asked for and reads loaded from the source, from the per-minute cache series."""
    from django.db.models import Sum

    from apps.metrics.models import MetricPoint

    prefix = _cache_series_prefix(namespace)
    sums = dict(
        MetricPoint.objects.filter(series__startswith=prefix, at__gte=since, at__lt=until)
        .values_list("series")
        .annotate(total=Sum("sum"))
        .values_list("series", "total")
    )
    requests = sum(v for k, v in sums.items() if k.endswith(".requests"))
    loads = sum(v for k, v in sums.items() if k.endswith(".loads"))
    return int(requests), int(loads)


def cache_hit_rate(*, namespace: str = "", since, until) -> float | None:
    """The share of reads not loaded from the source, from the per-minute cache series."""
    requests, loads = cache_reads(namespace=namespace, since=since, until=until)
    return 1 - loads / requests if requests else None


def series_mean(series: str, *, since, until) -> float | None:
    """The mean of a sampled series (host.cpu_pct, inference.tokens_per_s, ...) over a window. Points stored
    before samples were checked may be NaN: one made the mean NaN, which breaches no threshold."""
    points = [(at, total, count) for at, total, count in _point_series(series, since, until) if math.isfinite(total)]
    count = sum(c for _, _, c in points)
    return sum(s for _, s, _ in points) / count if count else None


# Series other apps sample into MetricPoint (inference records its tokens/s as it serves).
SAMPLED_SERIES = {"inference_tokens_per_s": "inference.tokens_per_s"}
# Gauges sampled per deployment, `<series>.<deployment>` (serving.TokenMeter): a step's figure is the sum of
# each deployment's mean in it (tokens per second of every deployment together). Points of the bare name were
# recorded before, of every deployment together: they say nothing of which services served them.
DEPLOYMENT_GAUGES = frozenset({"inference_tokens_per_s"})
# Counters other apps add to MetricPoint, one series per label set under the prefix, summed (never averaged):
# inference's failed loads, `inference.load_failures.<deployment>.<mode>` (services.inference_load_failure_record).
COUNTED_SERIES = {"inference_load_failures": "inference.load_failures."}


def counted_total(name: str, *, since, until) -> int:
    """A counter of COUNTED_SERIES summed over every label set in a window."""
    from apps.metrics.models import MetricPoint

    total = MetricPoint.objects.filter(series__startswith=COUNTED_SERIES[name], at__gte=since, at__lt=until).aggregate(
        total=Sum("sum")
    )["total"]
    return int(total or 0)


def host_gauge(name: str, *, since, until) -> float | None:
    """The mean of a host gauge (cpu_pct, memory_pct, ...) over a window."""
    return series_mean(SAMPLED_SERIES.get(name, f"host.{name}"), since=since, until=until)


def busiest_host(name: str, *, since, until, serving_only: bool = False) -> tuple[str, float] | None:
    """The host with the highest mean of a resource-monitor figure (cpu_pct, memory_pct) over a window, and
    that mean; `serving_only`: of the request-serving pods (serving_host_samples).

    An alert pages for the pod about to be throttled or OOM-killed: averaged with idle siblings (one at 97% of
    its memory limit, two at 30%: 52%) it would never fire. Each host's mean, so one spike does not page.
    Of finite samples only: a NaN reading made its host's mean NaN, which PostgreSQL sorts above every number,
    so the "busiest" host was NaN, which breaches no threshold: the alert stayed silent beside a host at 97%."""
    from django.db.models import Avg

    from apps.resources.models import ResourceSample

    rows = ResourceSample.objects.filter(at__gte=since, at__lt=until, **_finite(name))
    means = (
        (serving_host_samples(rows) if serving_only else rows)
        .values("host")
        .annotate(mean=Avg(name))
        .order_by("-mean", "host")
        .values_list("host", "mean")
    )
    return next(iter(means[:1]), None)


def _finite(name: str) -> dict:
    """A filter on a sample's figure: neither NULL, NaN nor an infinity."""
    return {f"{name}__gt": -math.inf, f"{name}__lt": math.inf}


def serving_host_samples(rows):
    """The samples of the pods that serve requests: those they published (measured_at set; the api and live
    pods), not the worker's own, whose CPU and memory are Celery's and a benchmark's load generator's. Where
    no pod published (one machine running every process: its pods' publishes are its own host's, not
    recorded twice), the host's own samples are the only figure of the machine that serves."""
    published = rows.filter(measured_at__isnull=False)
    return published if published.exists() else rows


def busiest_host_mean(name: str, *, since, until) -> float | None:
    busiest = busiest_host(name, since=since, until=until)
    return busiest[1] if busiest else None


def cache_min_reads() -> int:
    """The fewest reads a hit rate is judged on: the caching optimizer's minimum, so an alert never fires on
    a hit rate that `optimize caching` calls not measured (8 reads, 3 of them loads, are not a 62% miss rate)."""
    from django.apps import apps

    if not apps.is_installed("apps.optimizer"):
        return 0
    from apps.optimizer.caching import MIN_READS

    return MIN_READS


def alert_rule_value(rule, *, now=None) -> float | None:
    """The rule's metric over its window; None when there is too little data to judge."""
    now = now or timezone.now()
    since = now - timedelta(minutes=rule.window_minutes)
    metric = rule.metric
    if metric in ("p95_ms", "error_rate_pct"):
        # Rollups are whole minutes, each stamped with its start: from `since` itself, the minute it falls in
        # was left out, so a 1-minute window read only the seconds of the minute in progress (about none).
        # Both leave out the limiter's refusals (429, answered in a few ms), as the adaptive limiter's p95 does:
        # a storm of them read as a fast service while the requests it served were slow, and as a healthy one
        # while half of them failed (2,000 refusals beside 30 errors in 60: 1.5%, not 50%).
        latency = route_latency(
            route_prefixes=[rule.service.route_prefix] if rule.service_id else None,
            since=_minute_floor(since),
            until=now,
            exclude_status_classes=RATE_LIMITED,
        )
        if latency["count"] < rule.min_requests:
            return None
        return latency["p95_ms"] if metric == "p95_ms" else 100 * latency["errors"] / latency["count"]
    if metric == "cache_hit_rate_pct":
        requests, loads = cache_reads(namespace=rule.cache_namespace, since=since, until=now)
        if requests < max(rule.min_requests, cache_min_reads()):
            return None
        return 100 * (1 - loads / requests)
    if metric == "benchmark_regressions":
        from django.apps import apps

        if not apps.is_installed("apps.benchmarks"):
            return None
        from apps.benchmarks.models import Regression

        regressions = Regression.objects.filter(acknowledged_at=None)
        if rule.service_id:
            regressions = regressions.filter(plan__service_id=rule.service_id)
        return float(regressions.count())
    if metric in COUNTED_SERIES:  # a count of events: 0 in a window without any is a value, not "no data"
        return float(counted_total(metric, since=since, until=now))
    if metric in ("cpu_pct", "memory_pct"):
        return busiest_host_mean(metric, since=since, until=now)
    return host_gauge(metric, since=since, until=now)


LATENCY_METRICS = (
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "rps",
    "error_rate_pct",
    "requests",
    "rate_limited",
    "rate_limited_rps",
)

# Request counts: 0 in a step after the routes' first rollup in the window (a quiet minute served none), no data
# (None) before it. The percentiles and the error rate are None in any step without requests (undefined).
COUNT_METRICS = ("rps", "requests", "rate_limited", "rate_limited_rps")


def time_series(
    *,
    metric: str,
    since,
    until,
    step_seconds: int,
    route_prefixes: list[str] | None = None,
    namespace: str = "",
    serving_hosts_only: bool = False,
    visible_services: frozenset[int] | None = None,
):
    """[(bucket start, value)] of a metric between two instants, one value per step; request metrics over the
    routes under `route_prefixes` (None: every route), of the requests served (`rate_limited`,
    `rate_limited_rps`: the limiter's refusals, left out of the others). `serving_hosts_only`: a host figure of the
    request-serving pods only (serving_host_samples), and no step from the `host.*` series, which has the
    worker's figures in it. `visible_services` (ids; None: all): no failed loads nor tokens/s of deployments of
    other services (deployments_hidden). A step with nothing measured is None (no data), not 0: the percentiles
    and error rate of a step without requests, and the request counts of the steps before the window's first
    rollup (COUNT_METRICS).

    One query for the whole range, its rows summed into their steps here: the dashboard asks for up to
    1,440 steps, and a query per step took about a second and a pooled connection all that time.
    """
    # In UTC: aware datetimes of one zone add and compare by the wall clock, so across a DST change the steps
    # of the hospital's zone were an hour off, doubled or missing (a row past the last one: IndexError, a 500).
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    step = timedelta(seconds=step_seconds)
    starts = []
    while (since + len(starts) * step) < until:
        starts.append(since + len(starts) * step)

    def index(at) -> int:
        return int((at - since) // step)

    if metric in LATENCY_METRICS:
        values = _latency_steps(metric, starts, since, until, index, route_prefixes=route_prefixes)
    elif metric == "cache_hit_rate_pct":
        values = _cache_hit_rate_steps(len(starts), since, until, index, namespace=namespace)
    elif metric in DEPLOYMENT_GAUGES:
        values = _deployment_gauge_steps(
            SAMPLED_SERIES[metric], len(starts), index, since, until, visible_services=visible_services
        )
    elif metric in COUNTED_SERIES:
        hidden = counted_series_hidden(metric, visible_services)
        values = _counted_steps(COUNTED_SERIES[metric], len(starts), since, until, index, hidden=hidden)
    elif metric in RESOURCE_GAUGES:
        values = _busiest_host_steps(metric, len(starts), since, until, step_seconds, serving_only=serving_hosts_only)
        # Steps past the monitor's retention: the `host.*` series is all there is (for the dashboard).
        if None in values and not serving_hosts_only:
            mixed = _gauge_steps(f"host.{metric}", len(starts), since, until, index)
            values = [blend if value is None else value for value, blend in zip(values, mixed, strict=True)]
    else:
        values = _gauge_steps(SAMPLED_SERIES.get(metric, f"host.{metric}"), len(starts), since, until, index)
    # A NaN stored before samples were checked must not make the answer invalid JSON (a 500)
    return [
        (start, round(value, 3) if value is not None and math.isfinite(value) else None)
        for start, value in zip(starts, values, strict=True)
    ]


def _latency_steps(metric: str, starts: list, since, until, index, *, route_prefixes) -> list[float | None]:
    counts, errors = [0] * len(starts), [0] * len(starts)
    histograms: dict[int, HdrHistogram] = {}  # only the steps with traffic, and only for a percentile
    percentile = metric.startswith("p")
    columns = ("minute", "count", "errors", *(["histogram"] if percentile else []))
    rows = RequestRollup.objects.filter(routes_under(route_prefixes), minute__gte=since, minute__lt=until)
    refused = metric.startswith("rate_limited")
    counted = metric in COUNT_METRICS
    if counted:
        # Every row, served or refused, says the routes were measured from its step on: the one query reads
        # both and keeps those of the metric here (a minute of refusals only served 0, which is true).
        columns = (*columns, "status_class")
    elif refused:
        rows = rows.filter(status_class__in=RATE_LIMITED)
    else:
        rows = rows.exclude(status_class__in=RATE_LIMITED)
    first = len(starts)  # the first step with any rollup: before it nothing was measured, a count is no data
    # Steps of whole hours (the 7-day chart's): each settled hour's percentiles from its cached merge, as the
    # SLO reads do; decoding every minute row took seconds per metric of the chart.
    step = starts[1] - starts[0] if len(starts) > 1 else None
    on_hours = step is None or (step % hour_merges.HOUR == timedelta(0) and since == hour_merges.hour_floor(since))
    hours = hour_merges.settled_hours(since, until) if percentile and on_hours else None
    merges = []
    if hours is not None:
        rows, hourly = hour_merges.hours_split(rows, *hours)
        merges.append(hour_merges.hour_histograms(hourly))
    # Steps of whole UTC days (a year's chart): the hourly rows past 30 days come merged per day, as above.
    days = hour_merges.days_split(rows, since, until) if percentile and on_hours and _on_days(step, since) else None
    if days is not None:
        rows, daily = days
        merges.append(hour_merges.day_histograms(daily))
    for merged in merges:
        for start, histogram, count, row_errors in merged:
            i = index(start)
            counts[i] += count
            errors[i] += row_errors
            if i not in histograms:  # not setdefault: it built a histogram (~100 us) for every merge
                histograms[i] = new_histogram()
            histograms[i].add(histogram)
    for minute, count, row_errors, *more in rows.values_list(*columns).iterator(chunk_size=2000):
        i = index(minute)
        if counted:
            first = min(first, i)
            if (more[0] in RATE_LIMITED) != refused:
                continue
            histogram = []
        else:
            histogram = more
        counts[i] += count
        errors[i] += row_errors
        if histogram:
            if i not in histograms:
                histograms[i] = new_histogram()
            histograms[i].add(HdrHistogram.decode(bytes(histogram[0])))
    values = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else until
        if counted and i < first:
            values.append(None)
        elif metric in ("rps", "rate_limited_rps"):
            values.append(counts[i] / (end - start).total_seconds())
        elif metric in ("requests", "rate_limited"):
            values.append(counts[i])
        elif metric == "error_rate_pct":
            values.append(100 * errors[i] / counts[i] if counts[i] else None)
        else:
            values.append(_latency(histograms.get(i), counts[i], errors[i])[metric])
    return values


def _on_days(step: timedelta | None, since: datetime) -> bool:
    """Steps made of whole UTC days: a day's merge falls in one step."""
    return (step is None or step % hour_merges.DAY == timedelta(0)) and since == hour_merges.day_floor(since)


def _cache_hit_rate_steps(steps: int, since, until, index, *, namespace: str) -> list[float | None]:
    from apps.metrics.models import MetricPoint

    requests, loads = [0.0] * steps, [0.0] * steps
    prefix = _cache_series_prefix(namespace)
    points = MetricPoint.objects.filter(series__startswith=prefix, at__gte=since, at__lt=until)
    for at, series, total in points.values_list("at", "series", "sum"):
        if series.endswith(".requests"):
            requests[index(at)] += total
        elif series.endswith(".loads"):
            loads[index(at)] += total
    return [100 * (1 - int(lo) / int(re)) if int(re) else None for re, lo in zip(requests, loads, strict=True)]


# The resource monitor's figures, sampled per host (ResourceSample.host); a `host.<name>` series point is a
# monitor run's busiest host (resources.tasks._series_record), and one stored before that, the mean of every host's.
RESOURCE_GAUGES = frozenset({"cpu_pct", "memory_pct", "disk_pct", "pool_pct", "db_connections_pct"})


def _busiest_host_steps(
    name: str, steps: int, since, until, step_seconds: int, *, serving_only: bool = False
) -> list[float | None]:
    """Each step's busiest host: the highest of the hosts' means over the step, as the alerts and the live
    feed judge them; `serving_only`: of the pods that published in the step, where any did (as
    serving_host_samples chooses, step by step). The `host.*` series are read only for steps older than the
    monitor keeps its per-host samples: their older points blend every pod (a worker at 97% beside an idle
    api pod read 63%), and none of them says which pods served.

    The means are the database's, one row per step and host: a sample every 30 s per host streamed into
    Python took 1.4 s for 5 hosts over 7 days, and the dashboard's host chart asks for two figures."""
    from django.db.models import Avg, Case, Max, When

    from apps.resources.models import ResourceSample

    finite = _finite(name)
    any_published = Max(Case(When(measured_at__isnull=False, then=1), default=0, output_field=IntegerField()))
    per_host = list(
        ResourceSample.objects.filter(at__gte=since, at__lt=until, **finite)
        .order_by()
        .annotate(step=_StepOf("at", since=since, step_seconds=step_seconds))
        .values("step", "host")
        .annotate(mean=Avg(name), published=any_published)
        .values_list("step", "mean", "published")
    )
    published_steps = {i for i, _, published in per_host if published} if serving_only else set()
    values: list[float | None] = [None] * steps
    for i, mean, published in per_host:
        if i in published_steps and not published:  # the worker's own, beside the pods that serve
            continue
        if values[i] is None or mean > values[i]:
            values[i] = mean
    return values


class _StepOf(Func):
    """The step of time_series a timestamp falls in: whole `step_seconds` since `since`, rounded down, exact
    to the microsecond as its index() counts them (a sample on a step's first instant is that step's)."""

    output_field = IntegerField()

    def __init__(self, expression, *, since: datetime, step_seconds: int):
        super().__init__(expression)
        self.since, self.step_seconds = since, step_seconds

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"host series steps are counted on PostgreSQL and SQLite, not {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra_context):
        # Counted on the interval from `since`, as index() is: its epoch is exact (numeric, PostgreSQL 14+).
        at, params = compiler.compile(self.source_expressions[0])
        sql = f"FLOOR(EXTRACT(EPOCH FROM ({at} - %s::timestamptz)) / %s)::bigint"
        return sql, (*params, self.since, self.step_seconds)

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC: whole seconds, then the microseconds if any.
        at, params = compiler.compile(self.source_expressions[0])
        micros = f"(CAST(strftime('%%s', {at}) AS INTEGER) * 1000000 + CAST(substr({at}, 21, 6) AS INTEGER))"
        micro = timedelta(microseconds=1)
        since, step = (
            (self.since - datetime(1970, 1, 1, tzinfo=UTC)) // micro,
            timedelta(seconds=self.step_seconds) // micro,
        )
        return f"(({micros} - %s) / %s)", (*params, *params, since, step)  # integers: division rounds down


def deployments_hidden(visible_services: frozenset[int] | None) -> QuerySet | None:
    """The inference deployments hidden from a caller who sees `visible_services` (None: all, and None back):
    those of services the caller does not see (a deployment of none, or one deleted since, is every staff
    user's, as alert rules of none are). The one rule of the per-deployment series (failed loads, tokens/s)."""
    if visible_services is None:
        return None
    from apps.inference.models import ModelDeployment

    return ModelDeployment.objects.filter(service__isnull=False).exclude(service__in=visible_services)


def counted_series_hidden(metric: str, visible_services: frozenset[int] | None) -> list[str]:
    """The label prefixes of a COUNTED_SERIES metric hidden from a caller who sees `visible_services` (None:
    all). Failed loads are labelled by deployment: those of deployments_hidden."""
    hidden = deployments_hidden(visible_services)
    if hidden is None or metric != "inference_load_failures":
        return []
    return [f"{COUNTED_SERIES[metric]}{name}." for name in hidden.values_list("name", flat=True)]


def deployment_gauge_points(series: str, visible_services: frozenset[int] | None) -> Q:
    """The points of a DEPLOYMENT_GAUGES series a caller who sees `visible_services` (None: all) may read:
    those of deployments not hidden from them (deployments_hidden), and the bare name's (recorded before the
    series named its deployment, of every deployment together) only if no service is hidden from them
    (sees_all_traffic). Part of the points' own query (subqueries): the series stays one query."""
    own, everyone = Q(series__startswith=f"{series}."), Q(series=series)
    hidden = deployments_hidden(visible_services)
    if hidden is None:
        return own | everyone
    hidden_here = hidden.annotate(point_series=Concat(Value(f"{series}."), "name", output_field=CharField())).filter(
        point_series=OuterRef("series")
    )
    any_service_hidden = Service.objects.exclude(pk__in=visible_services)
    return (own & ~Exists(hidden_here)) | (everyone & ~Exists(any_service_hidden))


def _deployment_gauge_steps(
    series: str, steps: int, index, since, until, *, visible_services: frozenset[int] | None
) -> list[float | None]:
    """Each step's sum over the deployments (each series) of their mean in the step: two deployments at 40 and
    10 tokens/s serve 50, not 25; None in a step without any point (nothing generated: no data)."""
    from apps.metrics.models import MetricPoint

    points = MetricPoint.objects.filter(deployment_gauge_points(series, visible_services), at__gte=since, at__lt=until)
    sums: dict[tuple[int, str], list[float]] = {}
    for name, at, total, count in points.values_list("series", "at", "sum", "count"):
        if count and math.isfinite(total):
            pair = sums.setdefault((index(at), name), [0.0, 0])
            pair[0] += total
            pair[1] += count
    values: list[float | None] = [None] * steps
    for (i, _), (total, count) in sums.items():
        values[i] = (values[i] or 0.0) + total / count
    return values


def _counted_steps(prefix: str, steps: int, since, until, index, *, hidden: list[str] | None = None) -> list[float]:
    """A counter's increments per step, over every series under `prefix` but those under one of `hidden`
    (prefixes too): 0 in a step without any (nothing failed), not "no data"."""
    from apps.metrics.models import MetricPoint

    totals = [0.0] * steps
    points = MetricPoint.objects.filter(series__startswith=prefix, at__gte=since, at__lt=until)
    if hidden:
        points = points.exclude(functools.reduce(operator.or_, (Q(series__startswith=h) for h in hidden)))
    for at, total in points.values_list("at", "sum"):
        if math.isfinite(total):
            totals[index(at)] += total
    return totals


def stored_grain(metric: str, *, since: datetime, until: datetime, namespace: str = "") -> int | None:
    """The seconds each stored point of a series metric covers where its points were folded (60 for those
    downsampled past 48 h, 3600 past 30 days), the coarsest of those from the hour `since` falls in up to
    `until`; None where only raw points (instants) or none are stored, and for request metrics (whose grain
    is their rollups'). Read from what is stored, not from the age: points recorded with an old time stay raw
    until the next downsampling."""
    from apps.metrics.models import MetricPoint

    if metric in LATENCY_METRICS:
        return None
    if metric == "cache_hit_rate_pct":
        where = Q(series__startswith=_cache_series_prefix(namespace))
    elif metric in COUNTED_SERIES:
        where = Q(series__startswith=COUNTED_SERIES[metric])
    elif metric in DEPLOYMENT_GAUGES:
        where = deployment_gauge_points(SAMPLED_SERIES[metric], None)
    else:
        where = Q(series=SAMPLED_SERIES.get(metric, f"host.{metric}"))
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    points = MetricPoint.objects.filter(where, at__gte=hour, at__lt=until)
    for resolution, seconds in ((MetricPoint.Resolution.HOUR, 3600), (MetricPoint.Resolution.MINUTE, 60)):
        if points.filter(resolution=resolution).exists():
            return seconds
    return None


def _gauge_steps(series: str, steps: int, since, until, index) -> list[float | None]:
    sums, counts = [0.0] * steps, [0] * steps
    for at, total, count in _point_series(series, since, until):
        sums[index(at)] += total
        counts[index(at)] += count
    return [total / count if count else None for total, count in zip(sums, counts, strict=True)]


def live_snapshot(*, now=None, visible_services: frozenset[int] | None = None) -> dict:
    """What the dashboard's live feed shows each second: the last minute per service, the host, alerts.

    `visible_services` (ids; None: all) is what the viewer may see: hidden services' rows, alerts and
    benchmark runs are left out, and the overall row covers the visible services' routes only."""
    from apps.metrics.models import Alert
    from apps.resources.selectors import database_now, latest_samples_by_host

    # The database's clock, which stamps the request rollups and the host samples: a live process whose clock ran
    # a minute off showed the minute before or after the one being written (no traffic, or the wrong p95).
    now = now or database_now()
    since = now - timedelta(seconds=60)
    services = Service.objects.filter(is_active=True).exclude(route_prefix="")
    alerts = alerts_visible(Alert.objects.filter(state="firing"), visible_services)
    overall_routes = None
    if visible_services is not None:
        services = services.filter(pk__in=visible_services)
        overall_routes = list(Service.objects.filter(pk__in=visible_services).values_list("route_prefix", flat=True))
    rows = [_live_row(service.slug, service.name, [service.route_prefix], since, now) for service in services]
    # The busiest of the hosts that sample (the newest sample of any host showed whichever pod the monitor
    # last ran on: a saturated one half the time).
    latest = latest_samples_by_host(now=now).values()
    host = {}
    for name in ("cpu_pct", "memory_pct", "pool_pct"):
        values = [getattr(sample, name) for sample in latest if _is_finite(getattr(sample, name))]
        host[name] = max(values, default=None)
    hit_rate = cache_hit_rate(since=now - timedelta(minutes=5), until=now)
    return {
        "overall": _live_row(
            "all", "All routes" if overall_routes is None else "All your services", overall_routes, since, now
        ),
        "services": rows,
        "cache_hit_rate": round(hit_rate, 4) if hit_rate is not None else None,
        "host": host if latest else {},
        "alerts": [
            {"rule": name, "severity": severity, "message": message, "since": started.isoformat()}
            for name, severity, message, started in alerts.values_list(
                "rule_name", "rule_severity", "message", "started_at"
            )
        ],
        "work": running_work(visible_services=visible_services),
        # The Celery worker's heartbeat (apps.core.selectors.probe_worker): a paused one showed nothing.
        "worker": probe_worker(),
        # The long worker's (benchmark runs, optimizer steps): the Overview showed the default worker's alone.
        "long_worker": probe_long_worker(),
    }


def running_work(*, visible_services: frozenset[int] | None = None) -> list[dict]:
    """Benchmark and optimization runs not finished yet, with their progress (0-1), for the live feed."""
    from django.apps import apps

    work = []
    if apps.is_installed("apps.benchmarks"):
        from apps.benchmarks.models import BenchmarkRun

        runs = BenchmarkRun.objects.filter(status__in=["pending", "running"]).select_related("plan")
        runs = of_visible_services(runs, visible_services, "plan__service")
        for run in runs[:10]:
            work.append({"kind": "benchmark", "id": run.pk, "name": run.plan.name, "status": run.status,
                         "progress": round(run.progress, 3), "message": run.progress_message})  # fmt: skip
    if apps.is_installed("apps.optimizer"):
        from apps.optimizer.models import OptimizationRun

        runs = OptimizationRun.objects.filter(status__in=["pending", "running"]).prefetch_related("steps")
        every_service = None  # whether the viewer sees every service: asked once, only for a run of no service
        for run in of_visible_services(runs, visible_services, unassigned=True)[:10]:
            steps = list(run.steps.all())
            done = sum(step.is_finished for step in steps)
            current = next((step for step in steps if step.status == "running"), None)
            message = ""
            if current:
                # A run of no service works through every service ("scaling: forecast fhir-api"): its step's
                # message names hidden ones, so a viewer who does not see them all gets the step's name only.
                if run.service_id is None and every_service is None:
                    every_service = sees_all_traffic(visible_services)
                shown = run.service_id is not None or every_service
                message = f"{current.name}: {current.progress_message}" if shown else current.name
            # The running step's own progress counts: a one-step run read 0 until it finished.
            partial = min(max(current.progress, 0.0), 1.0) if current and _is_finite(current.progress) else 0.0
            work.append({"kind": "optimization", "id": run.pk, "name": f"optimize {run.target}", "status": run.status,
                         "progress": round((done + partial) / len(steps), 3) if steps else 0.0,
                         "message": message})  # fmt: skip
    return work


def _is_finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _minute_floor(at):
    return at.replace(second=0, microsecond=0)


def _live_row(slug: str, name: str, route_prefixes: list[str] | None, since, now) -> dict:
    """The last minute of the routes under `route_prefixes`: the requests served, and the refusals apart."""
    since = _minute_floor(since)
    latency = route_latency(route_prefixes=route_prefixes, since=since, exclude_status_classes=RATE_LIMITED)
    refused = rate_limited_count(route_prefixes=route_prefixes, since=since)
    seconds = 60 + now.second + now.microsecond / 1e6  # the rollups cover this minute and the one before
    return {
        "service": slug,
        "name": name,
        "rps": round(latency["count"] / seconds, 2),
        "p95_ms": latency["p95_ms"],
        "error_rate_pct": round(100 * latency["errors"] / latency["count"], 2) if latency["count"] else None,
        "rate_limited": refused,
        "rate_limited_rps": round(refused / seconds, 2),
    }


# Metrics of an alert rule that measure no service's traffic: the hosts' and the caches' (a cache namespace is
# shared by every service). A rule of no service on one of these is every staff user's; on the others (p95,
# errors, load failures, regressions) it sums every service's, hidden ones included.
SHARED_ALERT_METRICS = ("cpu_pct", "memory_pct", "cache_hit_rate_pct")


def rules_visible(rows: QuerySet, visible_services: frozenset[int] | None, rule_path: str = "") -> QuerySet:
    """The alert rules (or, through `rule_path`, what hangs off one: an alert's is "rule") a viewer who sees
    `visible_services` (None: all) may see: of those services, host and cache rules of no service
    (SHARED_ALERT_METRICS), and other rules of no service, which sum every route's traffic, only if no service
    is hidden from them. One filter for the API, the live feed and admin, so none shows a rule another hides:
    admin once listed no rule of no service to an Operator reading its CPU alert on the dashboard."""
    if visible_services is None:
        return rows
    to_rule = f"{rule_path}__" if rule_path else ""
    return rows.filter(_scope(visible_services, f"{to_rule}service", f"{to_rule}metric"))


def _scope(visible_services: frozenset[int], service: str, metric: str, every_route: bool | None = None) -> Q:
    """rules_visible's filter on the fields `service` (an id) and `metric`."""
    unassigned = Q(**{f"{service}__isnull": True})
    if not (sees_all_traffic(visible_services) if every_route is None else every_route):
        unassigned &= Q(**{f"{metric}__in": SHARED_ALERT_METRICS})
    return Q(**{f"{service}__in": visible_services}) | unassigned


def alerts_visible(alerts: QuerySet, visible_services: frozenset[int] | None) -> QuerySet:
    """The alerts a viewer who sees `visible_services` (None: all) may see, judged as rules are (rules_visible)
    by what each alert kept when it fired: the id of the service it fired on (the service deleted, still its id:
    shown to no one restricted) and its metric. Host and cache rules were left out with the others: an Operator
    read "No alert is firing" beside a CPU alert firing. Judged by the rule's current service, an alert fired
    on a hidden service showed that service's name (its snapshot) once the rule was moved to a visible one.
    An alert without its snapshot (inserted by the last release's pods during an upgrade, until the next
    evaluation fills it: services.alert_snapshots_fill) is judged by its rule."""
    if visible_services is None:
        return alerts
    every_route = sees_all_traffic(visible_services)
    unfilled = Q(rule_name="", rule__isnull=False)
    kept = ~unfilled & _scope(visible_services, "service_pk", "rule_metric", every_route)
    of_rule = unfilled & _scope(visible_services, "rule__service", "rule__metric", every_route)
    return alerts.filter(kept | of_rule)


def alert_list(
    *, state: str | None = None, limit: int = 100, visible_services: frozenset[int] | None = None
) -> list[dict]:
    from apps.metrics.models import Alert

    alerts = Alert.objects.order_by("-started_at")
    alerts = alerts_visible(alerts, visible_services)
    if state:
        alerts = alerts.filter(state=state)
    # What the rule was when the alert fired (its snapshot): the rule since renamed or deleted, the alert still
    # says what paged whom; a deleted rule's alert (rule_id null) read alert.rule.name and failed the list (500).
    return [
        {
            "id": alert.pk,
            "rule": alert.rule_name,
            "rule_id": alert.rule_id,
            "severity": alert.rule_severity,
            "metric": alert.rule_metric,
            "operator": alert.rule_operator,
            "threshold": alert.rule_threshold,
            "service": alert.service_name or None,
            "state": alert.state,
            "message": alert.message,
            "value": alert.value,
            "last_value": alert.last_value,
            "started_at": alert.started_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        }
        for alert in alerts[:limit]
    ]
