"""The resource monitor: sample the host and its dependencies, keep recommendations current."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psutil
from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models.functions import Now
from django.utils import timezone

from apps.core.schedules import schedule_interval, scheduled_task_lock
from apps.core.selectors import database_pool_stats
from apps.resources import cgroup
from apps.resources.models import ResourceRecommendation, ResourceSample
from apps.resources.selectors import DatabaseClock, database_now, thresholds_current

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    kind: str
    metric: str
    threshold_setting: str
    advice: Callable[[ResourceSample, float], str]
    # A figure of a server every host shares (PostgreSQL, Redis), whichever host read it: one recommendation,
    # under SHARED_HOST, not one per worker that happened to sample it.
    shared: bool = False


SHARED_HOST = ""


def _pct(value: float) -> str:
    return f"{value:.0f}%"


RULES = [
    Rule("cpu", "cpu_pct", "cpu", lambda s, t: (
        f"CPU at {_pct(s.cpu_pct)} (threshold {_pct(t)}): add API replicas (deploy/k8s HPA) or let adaptive "
        "rate limits shed low-priority traffic; move batch work (benchmarks, optimizations) off peak.")),
    Rule("memory", "memory_pct", "memory", lambda s, t: (
        f"Memory at {_pct(s.memory_pct)} (threshold {_pct(t)}): shrink the L1 cache (CACHE_L1_MAX_BYTES, now "
        f"{settings.CACHE_L1_MAX_BYTES // 2**20} MiB per process) or lower the policies' L1 entry bounds.")),
    Rule("disk", "disk_pct", "disk", lambda s, t: _disk_advice(s, t)),
    Rule("pool", "pool_pct", "pool", lambda s, t: (
        f"Connection pool at {_pct(s.pool_pct)} (threshold {_pct(t)}): raise DB_POOL_MAX_SIZE (now "
        f"{settings.DB_POOL_MAX_SIZE}) within PostgreSQL's max_connections, or add a read replica.")),
    Rule("db_connections", "db_connections_pct", "pool", lambda s, t: (
        f"PostgreSQL connections at {_pct(s.db_connections_pct)} of max_connections (threshold {_pct(t)}): "
        "lower DB_POOL_MAX_SIZE x processes, or raise max_connections."), shared=True),
    Rule("redis_memory", "redis_memory_pct", "redis_memory", lambda s, t: (
        f"Redis memory at {_pct(_redis_pct(s) or 0)} of maxmemory (threshold {_pct(t)}): raise maxmemory, "
        "shorten TTLs or turn L2 off for bulky namespaces."), shared=True),
]  # fmt: skip


def _disk_advice(sample: ResourceSample, threshold: float) -> str:
    """The figure is the disk of VAR_DIR on the sampled host, never PostgreSQL's (another server, unmeasured
    here): the advice names it and what fills it, not the database's WAL or audit tables it cannot see."""
    said = (
        f"Disk of VAR_DIR ({settings.VAR_DIR}) on {sample.host} at {_pct(sample.disk_pct)} "
        f"(threshold {_pct(threshold)})"
    )
    if connections["default"].vendor == "sqlite":  # embedded: the database is in VAR_DIR
        return f"{said}: the embedded database is there; prune expired L3 cache entries, archive old audit events."
    return (
        f"{said}: free or grow that volume (Prometheus multiprocess files, preloaded models, the file cache and "
        "broker folder when embedded). PostgreSQL's disk is not measured here: watch it on its server."
    )


# An open recommendation resolves only under threshold x RECOVER_FACTOR (a CPU hovering at 69-71% against 70%
# stays one open row, not one per crossing), and only after RECOVER_SAMPLES such samples in a row (2 minutes
# at the monitor's 30 s), so one quiet sample in a busy spell does not close it.
RECOVER_FACTOR = 0.9
RECOVER_SAMPLES = 4
# Resolved recommendations stay this long as history (admin), like the samples they came from.
RESOLVED_KEEP_DAYS = 30
# A host with no sample for this long is gone (a pod replaced by a rollout gets a new name), and its open
# recommendations with it: nothing would ever resolve them. Long, because the task lands on any worker: with
# 10 workers, one goes 10 minutes (20 runs) unsampled 12% of the time, an hour (120 runs) 3 in a million.
GONE_AFTER = timezone.timedelta(hours=1)


def _redis_pct(sample: ResourceSample) -> float | None:
    if sample.redis_memory_bytes is None or not sample.redis_maxmemory_bytes:
        return None
    return 100 * sample.redis_memory_bytes / sample.redis_maxmemory_bytes


# Client sessions against the slots this role may take: the server's own processes (checkpointer, WAL writer,
# autovacuum, parallel workers) are listed in pg_stat_activity but take no connection slot, and a role that is
# not a superuser is refused at max_connections less the reserved slots, not at max_connections.
CONNECTIONS_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float
     / (current_setting('max_connections')::int - CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        THEN 0 ELSE current_setting('superuser_reserved_connections')::int
                    + coalesce(current_setting('reserved_connections', true), '0')::int END)
"""


def _database_connections_pct() -> float | None:
    if connections["default"].vendor != "postgresql":
        return None
    with connections["default"].cursor() as cursor:
        cursor.execute(CONNECTIONS_SQL)
        return round(100 * cursor.fetchone()[0], 1)


def _redis_memory() -> tuple[int | None, int | None]:
    if not settings.REDIS_URL:
        return None, None
    from django_redis import get_redis_connection

    try:
        info = get_redis_connection("default").info("memory")
    except Exception:  # noqa: BLE001 - an unreachable Redis is reported by /readyz, not here
        return None, None
    return info.get("used_memory"), info.get("maxmemory") or None


def _cpu_and_memory(*, cpu_interval: float, cgroup_root: Path) -> dict:
    """CPU and memory against the container's cgroup limits where it has them, else the host's (psutil);
    each figure says which."""
    limits = cgroup.limits(cgroup_root)
    figures = {}
    if limits is not None and limits.cpus:
        figures.update(cpu_pct=cgroup.cpu_percent(limits, interval=cpu_interval), cpu_source=limits.source,
                       cpu_limit=round(limits.cpus, 3))  # fmt: skip
    else:
        figures.update(cpu_pct=psutil.cpu_percent(interval=cpu_interval), cpu_source="host")
    if limits is not None and limits.memory_bytes:
        figures.update(memory_pct=cgroup.memory_percent(limits), memory_source=limits.source,
                       memory_limit_bytes=limits.memory_bytes)  # fmt: skip
    else:
        figures.update(memory_pct=psutil.virtual_memory().percent, memory_source="host")
    return figures


def _own_pool_pct() -> float | None:
    """This process's pool use as its api processes publish theirs (pools.pool_usage_publish: a full pool with
    requests queued is 100%), less the connection the sampling thread itself holds (the monitor samples inside
    its own transaction): a worker's idle pool read 1/max (10% of 10), and that figure stood for the host."""
    pool = database_pool_stats()
    if pool is None or not pool["max_size"]:
        return None
    if pool["size"] >= pool["max_size"] and pool["waiting"] > 0:
        return 100.0
    own = 1 if connections["default"].connection is not None else 0
    return round(100 * max(pool["in_use"] - own, 0) / pool["max_size"], 1)


def _host_pool_pct(own: float | None, published: dict | None) -> float | None:
    """The host's pool figure: its busiest pool, the sampling process's or one its api processes published (one
    host under `make run` or the Procfile). The worker's own alone was stored while a recommendation said the
    api's pool on that host was full, and the samples, the series and the dashboard read the worker's 10%."""
    figures = [value for value in (own, (published or {}).get("pct")) if value is not None]
    return max(figures) if figures else None


def resources_sample(
    *, cpu_interval: float = 1.0, cgroup_root: Path = cgroup.CGROUP_ROOT, published: dict | None = None
) -> ResourceSample:
    """Measure CPU (over `cpu_interval`), memory, disk, connections and Redis memory, and store it. `published`:
    the busiest pool this host's other processes published (pools.pool_usage_by_host), if any."""
    from apps.caching.stack import default_stack

    pool_pct = _host_pool_pct(_own_pool_pct(), published)
    redis_used, redis_max = _redis_memory()
    return _on_database_clock(ResourceSample.objects.create(
        host=socket.gethostname(),
        **_cpu_and_memory(cpu_interval=cpu_interval, cgroup_root=cgroup_root),
        disk_pct=psutil.disk_usage(str(settings.VAR_DIR)).percent,
        db_connections_pct=_database_connections_pct(),
        pool_pct=pool_pct,
        redis_memory_bytes=redis_used,
        redis_maxmemory_bytes=redis_max,
        l1_cache_bytes=sum(size for _, size in default_stack().l1.usage().values()),
    ))  # fmt: skip


# The monitor's schedule is every 30 s unless an admin changed it (then its own interval is read).
MONITOR_INTERVAL = timedelta(seconds=30)


def resources_sample_once_per_interval(*, schedule: str | None, published: dict | None = None) -> ResourceSample | None:
    """resources_sample, where a beat schedule sent it (`schedule`, its name) at most once per half the schedule's
    interval per host: two beats (an evicted pod terminating beside its replacement) each send the schedule,
    and every host got two samples per interval, its calm samples counted twice (a recommendation resolved in
    half of RECOVER_SAMPLES' time) and its occurrences too. None when skipped; by hand it always samples.
    `published`: as resources_sample's."""
    if schedule is None:
        return resources_sample(published=published)
    host = socket.gethostname()
    with transaction.atomic():
        scheduled_task_lock(f"resources.monitor:{host}")
        gap = (schedule_interval(schedule) or MONITOR_INTERVAL) / 2
        # The host's own samples (not ones recorded from a publish), on the database's clock (their `at`).
        if ResourceSample.objects.filter(host=host, measured_at__isnull=True, at__gt=Now() - gap).exists():
            logger.info("resources monitor: %s was sampled less than half an interval ago, skipped", host)
            return None
        return resources_sample(published=published)


def _on_database_clock(sample: ResourceSample) -> ResourceSample:
    """The sample's `at` set to the database's clock (auto_now_add wrote this host's): the monitor runs on any
    worker, and the adaptive limits, the gone-host check and the dashboard take their windows over every host's
    samples, which only one shared clock orders."""
    ResourceSample.objects.filter(pk=sample.pk).update(at=DatabaseClock())
    sample.refresh_from_db(fields=["at"])
    return sample


@transaction.atomic
def recommendations_update(
    *, sample: ResourceSample, pools: dict[str, dict] | None = None
) -> list[ResourceRecommendation]:
    """Keep the recommendations current, and return those open after it: the sample's host's, and the pool
    of each host in `pools` (pools.pool_usage_by_host: the request-serving processes, on hosts that never
    sample themselves).

    Over a threshold opens one (or re-sees it); an open one resolves only after RECOVER_SAMPLES samples in a
    row under threshold x RECOVER_FACTOR. A figure the sample lacks (Redis unreachable, no pool) is unknown:
    it neither opens, resolves, nor counts towards recovery. Each host has its own, because one busy host
    next to an idle one is a problem, not a flapping one."""
    thresholds = thresholds_current()
    current = []
    for rule in RULES:
        value = _redis_pct(sample) if rule.metric == "redis_memory_pct" else getattr(sample, rule.metric)
        threshold = thresholds[rule.threshold_setting]
        host = SHARED_HOST if rule.shared else sample.host
        figures = {} if value is None else {host: (value, partial(rule.advice, sample, threshold))}
        if rule.kind == "pool":  # each host by its busiest pool, the sampling process's own included
            for host, entry in (pools or {}).items():
                if host not in figures or entry["pct"] >= figures[host][0]:  # its advice names the process
                    figures[host] = (entry["pct"], partial(_pool_advice, entry, threshold))
        for host, (figure, advice) in figures.items():
            current += _recommendation_apply(rule, host, figure, threshold, advice)
    return current


PUBLISHED_FIGURES = ("cpu_pct", "cpu_source", "cpu_limit", "memory_pct", "memory_source", "memory_limit_bytes",
                     "disk_pct")  # fmt: skip


def published_samples_record(usage: dict[str, dict], *, own_host: str) -> dict[str, ResourceSample | None]:
    """A sample of each pod that published its figures (pools.pod_figures: the api and live pods), the
    sampling host's own aside; a pod whose CPU is not known yet (its first publish) waits for the next.

    A publish already recorded (None for its host) is not recorded again: an entry stays fresh for a minute,
    so a pod that stopped publishing, or two monitor runs close together, gave one measurement two samples,
    and two calm ones resolve a recommendation twice as fast as RECOVER_SAMPLES says. Two runs at once both
    pass the check: the constraint one_sample_per_publish lets one insert it, the other records None."""
    samples: dict[str, ResourceSample | None] = {}
    for host, entry in usage.items():
        if host == own_host or any(entry.get(name) is None for name in ("cpu_pct", "memory_pct", "disk_pct")):
            continue  # a sample needs the three (disk_pct is NOT NULL: its insert failed the whole run)
        measured_at = datetime.fromtimestamp(entry["at"], tz=UTC)  # Redis's clock when it stored the publish
        if ResourceSample.objects.filter(host=host, measured_at=measured_at).exists():
            samples[host] = None
            continue
        # A figure the entry lacks takes the column's default: cpu_source and memory_source are NOT NULL ("host").
        figures = {name: entry[name] for name in PUBLISHED_FIGURES if entry.get(name) is not None}
        try:
            with transaction.atomic():
                samples[host] = _on_database_clock(ResourceSample.objects.create(
                    host=host,
                    measured_at=measured_at,
                    pool_pct=entry["pct"],
                    l1_cache_bytes=entry.get("l1_cache_bytes"),
                    **figures,
                ))  # fmt: skip
        except IntegrityError:
            # Another run (two workers taking a backlog) recorded it after our check; any other refusal is news.
            if not ResourceSample.objects.filter(host=host, measured_at=measured_at).exists():
                raise
            samples[host] = None
    return samples


def _pool_advice(entry: dict, threshold: float) -> str:
    return (
        f"Connection pool at {_pct(entry['pct'])} (threshold {_pct(threshold)}) in process {entry['pid']}: "
        f"{entry['in_use']} of {entry['max_size']} connections in use, {entry['waiting']} requests waiting. Raise "
        "DB_POOL_MAX_SIZE of this deployment within PostgreSQL's max_connections, or add a read replica."
    )


def _recommendation_apply(
    rule: Rule, host: str, value: float, threshold: float, advice: Callable[[], str]
) -> list[ResourceRecommendation]:
    """One figure of one host against its rule: the recommendation open after it, if any."""
    open_one = (
        ResourceRecommendation.objects.select_for_update()
        .filter(kind=rule.kind, host=host, status=ResourceRecommendation.Status.OPEN)
        .first()
    )
    if value >= threshold:  # figures stop at 100 (a full pool, a quota all used): a 100% threshold must be reachable
        message = advice()
        if open_one is None:
            try:
                with transaction.atomic():
                    created = ResourceRecommendation.objects.create(
                        kind=rule.kind, host=host, metric=rule.metric, value=value, threshold=threshold, message=message
                    )
                return [created]
            except IntegrityError:  # another monitor run (a task queued behind this one) opened it first
                open_one = ResourceRecommendation.objects.select_for_update().get(
                    kind=rule.kind, host=host, status=ResourceRecommendation.Status.OPEN
                )
        open_one.value, open_one.threshold, open_one.message = value, threshold, message
        open_one.occurrences, open_one.calm_samples = open_one.occurrences + 1, 0
        open_one.save(update_fields=["value", "threshold", "message", "occurrences", "calm_samples", "last_seen"])
    elif open_one is None:
        return []
    elif value < threshold * RECOVER_FACTOR:
        open_one.calm_samples += 1
        if open_one.calm_samples >= RECOVER_SAMPLES:
            open_one.status, open_one.resolved_at = ResourceRecommendation.Status.RESOLVED, timezone.now()
        open_one.save(update_fields=["calm_samples", "status", "resolved_at"])
    elif open_one.calm_samples:  # back inside the band: the calm run starts over
        open_one.calm_samples = 0
        open_one.save(update_fields=["calm_samples"])
    return [open_one] if open_one.status == ResourceRecommendation.Status.OPEN else []


def recommendations_of_gone_hosts_resolve(*, now=None, live_hosts: Iterable[str] = ()) -> int:
    """Resolve the open recommendations of hosts that sent no sample for GONE_AFTER, other than `live_hosts`
    (those publishing their pools now); the number resolved. `now`: the database's clock, the samples'."""
    now = now or database_now()
    live = ResourceSample.objects.filter(at__gte=now - GONE_AFTER).values("host")
    gone = (
        ResourceRecommendation.objects.filter(status=ResourceRecommendation.Status.OPEN)
        .exclude(host=SHARED_HOST)  # PostgreSQL's or Redis's, sampled by whichever host runs the monitor
        .exclude(host__in=live)
        .exclude(host__in=list(live_hosts))
    )
    note = "Resolved: {} stopped reporting (gone, e.g. a replaced pod). "
    resolved = 0
    for recommendation in gone:
        recommendation.status, recommendation.resolved_at = ResourceRecommendation.Status.RESOLVED, now
        recommendation.message = note.format(recommendation.host or "the host") + recommendation.message
        recommendation.save(update_fields=["status", "resolved_at", "message"])
        resolved += 1
    return resolved


def resource_samples_prune(*, keep_days: int = 30) -> int:
    return ResourceSample.objects.filter(at__lt=timezone.now() - timezone.timedelta(days=keep_days)).delete()[0]


def resource_recommendations_prune(*, keep_days: int = RESOLVED_KEEP_DAYS) -> int:
    """Delete the recommendations resolved more than `keep_days` ago; open ones stay however old."""
    cutoff = timezone.now() - timezone.timedelta(days=keep_days)
    resolved = ResourceRecommendation.objects.filter(status=ResourceRecommendation.Status.RESOLVED)
    return resolved.filter(resolved_at__lt=cutoff).delete()[0]
