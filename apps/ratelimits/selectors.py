"""Reads of the rate-limit app: the policies (cached per process, refreshed within a second of an edit), and
how much of each limit is used."""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Prefetch
from django.db.models.functions import Now

from apps.core.local_cache import VersionedLocalCache
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy
from controlplane.db_router import reads_from_primary

policy_cache = VersionedLocalCache("ratelimit-policies", check_interval=1.0, ttl=300)


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    scope: str
    requests: int
    period_seconds: int
    burst_per_second: int | None
    fail_open: bool


class _LoadedPolicies:
    """What one load read, and the moment (this host's monotonic clock) its earliest tightening lapses. A lapse is
    no edit: nothing bumps the version then (the controller that would record it is the thing that stopped), so
    the entry is read again at that moment rather than served, tightened, for the rest of its 5-minute TTL."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = _load_policies()

    def reload(self) -> dict[str, ActivePolicy]:
        # One tuple assigned at once: a thread reading meanwhile sees the old pair or the new one, never a mix.
        self.state = _load_policies()
        return self.state[0]


def _load_policies() -> tuple[dict[str, ActivePolicy], float]:
    # From the primary: the version this load follows was bumped once an edit committed there, and what is
    # loaded now stays until the next edit. A replica a moment behind would have this process keep the old
    # limit (or none, for a new policy) for minutes.
    # The database's clock, too: the controller's readings are stamped with it (a lapse is judged against it).
    with reads_from_primary():
        rows = list(RateLimitPolicy.objects.filter(enabled=True).annotate(database_now=Now()))
    # Taken after the query: a lapse is then re-read at most the query's duration late, never early (an early
    # re-read would find it not yet lapsed and have to read again).
    loaded_at = time.monotonic()
    lapses_at = math.inf
    policies = {}
    for p in rows:
        policies[p.scope] = ActivePolicy(
            p.scope, p.requests_in_force(p.database_now), p.period_seconds, p.burst_per_second, p.fail_open
        )
        lapse = p.tightening_lapses_at(p.database_now)
        if lapse is not None:
            # The time left by the database's clock, counted on this host's: their offset does not matter.
            lapses_at = min(lapses_at, loaded_at + (lapse - p.database_now).total_seconds())
    return policies, lapses_at


def active_policies() -> dict[str, ActivePolicy]:
    loaded = policy_cache.get("all", _LoadedPolicies)
    policies, lapses_at = loaded.state
    if lapses_at <= time.monotonic():
        return loaded.reload()
    return policies


def active_policy(scope: str) -> ActivePolicy | None:
    return active_policies().get(scope)


def host_cpu_pct(*, since: datetime) -> float | None:
    """The CPU of the hosts the resource monitor samples: each host's mean since `since`, averaged over the
    hosts (a host sampled more often does not weigh more); None without samples. The monitor task runs on
    whichever worker takes it, so one sample is one host's, never the whole deployment's."""
    from apps.resources.models import ResourceSample

    per_host = list(
        ResourceSample.objects.filter(at__gte=since)
        .order_by()
        .values("host")
        .annotate(cpu=Avg("cpu_pct"))
        .values_list("cpu", flat=True)
    )
    return sum(per_host) / len(per_host) if per_host else None


@functools.cache
def route_scopes() -> dict[str, str]:
    """Each URL route template (as the request rollups store it) to the rate-limit scope of its view."""
    from django.urls import URLPattern, URLResolver, get_resolver

    found: dict[str, str] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
                try:
                    scope = getattr(view_class(), "throttle_scope", None) if view_class else None
                except TypeError:  # a view that needs arguments to exist names no scope we can read
                    scope = None
                if isinstance(scope, str) and scope:
                    found[prefix + str(pattern.pattern)] = scope

    walk(get_resolver().url_patterns, "")
    return found


def scope_usage(*, since: datetime, until: datetime) -> dict[str, dict]:
    """Per scope, from the request rollups: requests and 429s per minute, and the busiest client's
    requests in one minute (what the per-client limit is compared with)."""
    from apps.metrics.models import RequestRollup

    by_route = route_scopes()
    usage: dict[str, dict] = {}
    per_client: dict[tuple[str, str, datetime], int] = defaultdict(int)
    rows = RequestRollup.objects.filter(resolution="1m", minute__gte=since, minute__lt=until, route__in=list(by_route))
    for route, minute, status_class, client, count in rows.values_list("route", "minute", "status_class", "client",
                                                                        "count"):  # fmt: skip
        scope = by_route[route]
        entry = usage.setdefault(scope, {"requests": 0, "refused": 0, "minutes": defaultdict(lambda: [0, 0])})
        entry["requests"] += count
        entry["minutes"][minute][0] += count
        if status_class == "429":
            entry["refused"] += count
            entry["minutes"][minute][1] += count
        else:
            per_client[(scope, client, minute)] += count
    busiest: dict[str, int] = defaultdict(int)
    for (scope, _, _), count in per_client.items():
        busiest[scope] = max(busiest[scope], count)
    for scope, entry in usage.items():
        entry["busiest_client_per_minute"] = busiest[scope]
        entry["minutes"] = [[at.isoformat(), *counts] for at, counts in sorted(entry["minutes"].items())]
    return usage


def policy_overview(*, now: datetime | None = None, minutes: int = 60) -> list[dict]:
    """Every policy with its limit in force, the last hour's usage against it and its adaptive changes."""
    from django.utils import timezone

    now = now or timezone.now()
    usage = scope_usage(since=now - timedelta(minutes=minutes), until=now)
    # The latest 20 of each policy in the query itself (a window function): the history grows by a row per
    # step, and the page must not read all of it to show 20.
    # The limit in force by the database's clock, as the limiter judges a lapse.
    policies = RateLimitPolicy.objects.annotate(database_now=Now()).prefetch_related(
        Prefetch("adjustments", queryset=RateLimitAdjustment.objects.order_by("-at", "-id")[:20], to_attr="latest")
    )
    rows = []
    for policy in policies.order_by("priority", "scope"):
        used = usage.get(policy.scope, {"requests": 0, "refused": 0, "minutes": [], "busiest_client_per_minute": 0})
        in_force = policy.requests_in_force(policy.database_now)
        per_minute_limit = in_force * 60 / policy.period_seconds
        rows.append({
            "id": policy.pk, "scope": policy.scope, "description": policy.description, "enabled": policy.enabled,
            "requests": policy.requests, "effective_requests": in_force,
            "period_seconds": policy.period_seconds, "burst_per_second": policy.burst_per_second,
            "fail_open": policy.fail_open, "priority": policy.priority, "adaptive": policy.adaptive,
            "current_factor": policy.current_factor,
            "signal_read_at": policy.signal_read_at.isoformat() if policy.signal_read_at else None,
            "usage": {**used, "busiest_client_share": round(used["busiest_client_per_minute"] / per_minute_limit, 4)},
            "adjustments": [
                {"at": a.at.isoformat(), "direction": a.direction, "old_factor": a.old_factor,
                 "new_factor": a.new_factor, "reason": a.reason}
                for a in policy.latest
            ],
        })  # fmt: skip
    return rows
