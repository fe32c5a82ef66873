"""Hourly workload history of a service: our own metric rollups, Prometheus, or synthetic (demo) traffic."""

from __future__ import annotations

import base64
import json
import math
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import F, FloatField, Sum
from django.db.models.functions import Cast, TruncHour

from apps.core.link_local import guarded_opener, refusal_in
from apps.scaling.models import ScalingPolicy, WorkloadForecast

if TYPE_CHECKING:  # pandas (~1 s) is imported where used: this module loads in every process
    import pandas as pd

Metric = WorkloadForecast.Metric

# PromQL per metric; {selector} is the policy's label selector, {window} and {rate_window} the step (at least
# the floors below). Each is the mean over the step before the instant it is evaluated at (prometheus_range
# labels it with that step's start): a [5m] rate sampled once an hour was 5 minutes of the 60, and those of
# the hour before the label (the 05:55 ramp read as 06:00's load).
PROMETHEUS_QUERIES = {
    Metric.REQUEST_RATE: "sum(rate(http_requests_total{{{selector}}}[{rate_window}]))",
    Metric.CPU: "100 * avg(rate(container_cpu_usage_seconds_total{{{selector}}}[{rate_window}]))",
    Metric.MEMORY: "100 * avg(avg_over_time(container_memory_working_set_bytes{{{selector}}}[{window}])"
    " / avg_over_time(container_spec_memory_limit_bytes{{{selector}}}[{window}]))",
    Metric.RESPONSE_TIME: "1000 * histogram_quantile(0.95,"
    " sum by (le) (rate(http_request_duration_seconds_bucket{{{selector}}}[{rate_window}])))",
}  # fmt: skip


# A range-vector window holds the samples scraped in it, and a step shorter than the scrape interval (the
# benchmark's 15 s memory series; cAdvisor's is scraped every 30-60 s, Prometheus's default 60 s) left most
# windows empty: no value at those steps, and a short run under the 3 points of a memory trend. Before 6ad3ae1
# an instant query's 5-minute lookback always found the last sample. So a gauge's mean is over at least one
# scrape interval, and a rate, which needs two samples, over at least four (Grafana's $__rate_interval); a
# step that short reads the trailing mean up to its end. Hourly steps are unchanged.
SCRAPE_INTERVAL_SECONDS = 60
GAUGE_WINDOW_FLOOR_SECONDS = SCRAPE_INTERVAL_SECONDS
RATE_WINDOW_FLOOR_SECONDS = 4 * SCRAPE_INTERVAL_SECONDS


def prometheus_query(metric: str, *, selector: str, step_seconds: int) -> str:
    """The PromQL of one metric for a query_range at `step_seconds`: each step's mean, over a window no
    shorter than the floors above."""
    return PROMETHEUS_QUERIES[metric].format(
        selector=selector,
        window=f"{max(step_seconds, GAUGE_WINDOW_FLOOR_SECONDS)}s",
        rate_window=f"{max(step_seconds, RATE_WINDOW_FLOOR_SECONDS)}s",
    )


class HistoryUnavailable(Exception):
    pass


def hourly_history(policy: ScalingPolicy, metric: str, *, now: datetime, days: int | None = None) -> pd.Series:
    """The metric per hour over the last `days`, indexed by the hour's start in the hospital's time zone
    (settings.TIME_ZONE): rounds, clinics, weekends and holidays follow its wall clock, not UTC's, so the
    forecasts' calendar, the named peaks and KEDA's cron windows are read in it."""
    import pandas as pd

    days = days or settings.SCALING_HISTORY_DAYS
    # Whole UTC hours, as the hours are cut: `now` may be on the hospital's clock (the brief's API passes
    # datetime.now()), whose whole hour is hh:30 in UTC in a half-hour zone, and the first hour read half its load.
    since = _hour_start(now.astimezone(UTC) - timedelta(days=days))
    source = policy.history_source
    if source == ScalingPolicy.HistorySource.SYNTHETIC:
        from apps.scaling.synthetic import hospital_traffic

        frame = hospital_traffic(
            end=pd.Timestamp(now),
            hours=days * 24,
            seed=policy.service.slug,
            peak_rps=6 * policy.replica_capacity_rps,
            time_zone=settings.TIME_ZONE,
        )
        return frame[metric]
    if source == ScalingPolicy.HistorySource.PROMETHEUS:
        return prometheus_range(policy, metric, since=since, until=now)
    return _from_metrics(policy, metric, since=since, until=now)


def _series(rows) -> pd.Series:
    """Rows of (UTC hour, value), indexed on the hospital's clock. The hours are cut in UTC (TruncHour's
    tzinfo): cut on the local clock, the night clocks go back would fold two hours into one, and a zone
    off by half an hour (Asia/Kolkata) would straddle the whole UTC hours the history is bounded by."""
    import pandas as pd

    if not rows:
        return pd.Series(dtype=float)
    index, values = zip(*rows, strict=True)
    return pd.Series(values, index=pd.DatetimeIndex(index).tz_convert(settings.TIME_ZONE), dtype=float)


def _from_metrics(policy: ScalingPolicy, metric: str, *, since: datetime, until: datetime) -> pd.Series:
    """Request rate and response time from the service's request rollups; CPU and memory from the
    resource monitor's samples of the pods that serve requests (_serving_pods_hourly)."""
    from apps.metrics.models import RequestRollup
    from apps.metrics.selectors import routes_under

    if metric in (Metric.CPU, Metric.MEMORY):
        return _serving_pods_hourly("cpu_pct" if metric == Metric.CPU else "memory_pct", since=since, until=until)
    if not policy.service.route_prefix:
        raise HistoryUnavailable(f"{policy.service.slug} has no route prefix: its requests are not measured here.")
    if metric == Metric.REQUEST_RATE:
        until = _hour_start(until)  # whole hours only: see _request_rate
    rows = (
        RequestRollup.objects.filter(routes_under([policy.service.route_prefix]), minute__gte=since, minute__lt=until)
        .annotate(hour=TruncHour("minute", tzinfo=UTC))
        .values("hour")
        .annotate(requests=Sum("count"), weighted_p95=Sum(F("p95_ms") * Cast("count", FloatField())))
        .order_by("hour")
    )
    if metric == Metric.REQUEST_RATE:
        return _request_rate(rows, until=until)
    # The count-weighted p95 of the hour's minute rollups (per route): a response-time level to forecast.
    return _series([(row["hour"], row["weighted_p95"] / row["requests"]) for row in rows if row["requests"]])


def _serving_pods_hourly(name: str, *, since: datetime, until: datetime) -> pd.Series:
    """Each hour's busiest request-serving pod (metrics.selectors.serving_host_samples): the pods that serve
    the service's routes, which a policy scales, and not the worker, whose Celery tasks and benchmark load
    generator are no load of the service's. The busiest, because samples name a pod, not the services it
    serves (every api pod serves every route), and a pod at its limit is what scaling must prevent: the
    `host.*` series averaged every host, so a worker at 97% of its memory beside an idle api pod read 63.5%.
    Hours past the monitor's 30 days of per-host samples are missing, not taken from that blend."""
    from apps.metrics.selectors import time_series

    since = _hour_start(since)
    steps = time_series(metric=name, since=since, until=until, step_seconds=3600, serving_hosts_only=True)
    return _series([(start, value) for start, value in steps if value is not None])


def _hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _request_rate(rows, *, until: datetime) -> pd.Series:
    """Requests per second of each hour from the first with traffic up to `until` (an hour's start: the
    hour in progress is left out, its requests so far would read as a drop). The rollups hold rows only
    for minutes with requests: an hour without any is 0 req/s, not a gap to fill from the hours around."""
    import pandas as pd

    series = _series([(row["hour"], row["requests"] / 3600) for row in rows])
    if series.empty:
        return series
    hours = pd.date_range(series.index[0], pd.Timestamp(until).tz_convert(series.index.tz), freq="h", inclusive="left")
    return series.reindex(hours, fill_value=0.0)


# Every connection to Prometheus, each redirect hop's included, goes through the link-local guard (the cloud
# metadata service is refused however its address is written or resolved), and its credentials follow a
# redirect only within Prometheus' own origin: urllib's own opener sent the Authorization header on to
# wherever an answer pointed.
_prometheus_opener = guarded_opener()


def _prometheus_request(path: str) -> urllib.request.Request:
    """A request to SCALING_PROMETHEUS_URL, its credentials (user:password@ for basic auth, :token@ for a
    bearer token, as KEDA's TriggerAuthentication takes them) sent in the Authorization header: left in the
    URL, urllib read them as part of the host name and every query failed."""
    from apps.scaling.manifests import prometheus_server

    address, mode = prometheus_server(settings.SCALING_PROMETHEUS_URL)
    request = urllib.request.Request(f"{address.rstrip('/')}{path}")  # noqa: S310 (http(s) only: settings)
    if mode:
        parts = urllib.parse.urlsplit(settings.SCALING_PROMETHEUS_URL)
        user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
        if mode == "bearer":
            request.add_header("Authorization", f"Bearer {password}")
        else:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    return request


def prometheus_range(
    policy: ScalingPolicy, metric: str, *, since: datetime, until: datetime, step_seconds: int = 3600
) -> pd.Series:
    """One metric of the service from Prometheus' query_range (the policy's label selector): each whole step
    from `since` that has ended by `until`, labelled with its start (the queries look back one step); a step
    is at least its metric's window floor (see prometheus_query), so no two points share a scrape."""
    import pandas as pd

    if not settings.SCALING_PROMETHEUS_URL:
        raise HistoryUnavailable("SCALING_PROMETHEUS_URL is not set.")
    # A step shorter than its metric's window is widened to it: overlapping windows repeated each scrape in
    # several points (four at the benchmark's 15 s memory step), and a trend fitted over them took those
    # for independent samples: flat noise read as a significant memory leak in about a run in six.
    floor = GAUGE_WINDOW_FLOOR_SECONDS if metric == Metric.MEMORY else RATE_WINDOW_FLOOR_SECONDS
    step_seconds = max(step_seconds, floor)
    selector = policy.prometheus_selector or f'service="{policy.service.slug}"'
    query = urllib.parse.urlencode(
        {
            "query": prometheus_query(metric, selector=selector, step_seconds=step_seconds),
            "start": since.timestamp() + step_seconds,
            "end": until.timestamp(),
            "step": str(step_seconds),
        }
    )
    request = _prometheus_request(f"/api/v1/query_range?{query}")
    try:
        with _prometheus_opener.open(request, timeout=15) as response:
            payload = json.load(response)
    except OSError as exc:
        if refusal := refusal_in(exc):
            raise HistoryUnavailable(f"Prometheus: {refusal}") from exc
        raise HistoryUnavailable(f"Prometheus did not answer: {exc}") from exc
    except ValueError as exc:
        # Not Prometheus' JSON: an auth proxy's sign-in page (its redirect followed), a wrong URL's HTML. It
        # was a JSONDecodeError out of every caller: a benchmark run failed at its end for its memory trend.
        raise HistoryUnavailable(f"Prometheus answered something other than its JSON: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error", "query failed") if isinstance(payload, dict) else "not a query result"
        raise HistoryUnavailable(f"Prometheus: {error}")
    step = timedelta(seconds=step_seconds)
    try:
        results = payload["data"]["result"]
        if not results:
            return pd.Series(dtype=float)
        values = [
            (datetime.fromtimestamp(float(at), tz=UTC) - step, float(value)) for at, value in results[0]["values"]
        ]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
        raise HistoryUnavailable(f"Prometheus: an answer not shaped as a range query's ({exc!r})") from exc
    # NaN (no samples) and +Inf (histogram_quantile when the quantile falls in the +Inf bucket) are not loads.
    return _series([(at, value) for at, value in values if math.isfinite(value)])
