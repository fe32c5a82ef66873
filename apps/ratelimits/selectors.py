"""Reads of the rate-limit app: the policies (cached per process, refreshed within a second of an edit), and
how much of each limit is used."""

from __future__ import annotations

import functools
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Avg, F, Max, Prefetch, Window
from django.db.models.functions import FirstValue, Now, TruncMinute

from apps.core.local_cache import VersionedLocalCache
from apps.ratelimits.models import TIGHTENING_LAPSES_AFTER, RateLimitAdjustment, RateLimitLimitChange, RateLimitPolicy
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


def unknown_scope_warning(scope: str) -> str | None:
    """What an admin is told on saving a policy of a scope no view throttles by (a typo limits nothing,
    silently); None for a known one. A scope of the product's own (`reports`) is allowed, with this warning
    until a view names it in `throttle_scope`."""
    known = set(route_scopes().values())
    if scope in known:
        return None
    return (
        f"No view throttles by the rate-limit scope “{scope}”: this policy limits nothing until a view names it "
        f"in throttle_scope (a typo?). Known scopes: {', '.join(sorted(known))}."
    )


def exempt_clients(names) -> set[str]:
    """Of these API client names (as the request rollups label them), those exempt from rate limits: a token
    with the benchmark scope (a load test's, revoked once its run ends, kept by name)."""
    from apps.accounts.models import ApiClient
    from apps.accounts.scopes import BENCHMARK

    # Read in Python: SQLite (the embedded default) has no JSON containment lookup.
    rows = ApiClient.objects.filter(name__in=list(names)).values_list("name", "scopes")
    return {name for name, scopes in rows if isinstance(scopes, list) and BENCHMARK in scopes}


# Labels the request rollups give callers that are not API clients: a signed-in user by id (never a name or
# anything the user typed), the older label for all of them together, and a caller who is neither.
_USER_LABEL = re.compile(r"user:[0-9]{1,20}")
_PLAIN_LABELS = frozenset({"session", "anonymous"})
UNRECOGNISED_CLIENT = "unrecognised client"


def may_name_clients(user) -> bool:
    """Whether this user may see API clients' names: only with the permission their admin asks for
    (apps.accounts.roles keeps it from Operators and Viewers), as each dashboard page shows what the same
    user's admin shows. No user (a caller that did not say who reads) is told no names."""
    return user is not None and user.has_perm("accounts.view_apiclient")


def shown_client_labels(labels, *, names_clients: bool = False) -> dict[str, str]:
    """Each rollup client label as a page may show it: an API client (revoked ones too) by its name where the
    reader may see names (`may_name_clients`), else as "API client #<id>"; `user:<id>` (a primary key, never a
    username), "session" or "anonymous" as they are; anything else (written by an older or foreign recorder,
    which may carry a patient identifier or a username) as UNRECOGNISED_CLIENT."""
    from apps.accounts.models import ApiClient

    labels = set(labels)
    ids = dict(ApiClient.objects.filter(name__in=list(labels)).values_list("name", "pk"))
    shown = {}
    for label in labels:
        if label in ids:
            shown[label] = label if names_clients else f"API client #{ids[label]}"
        elif label in _PLAIN_LABELS or _USER_LABEL.fullmatch(label):
            shown[label] = label
        else:
            shown[label] = UNRECOGNISED_CLIENT
    return shown


def scope_usage(*, since: datetime, until: datetime, names_clients: bool = False) -> dict[str, dict]:
    """Per scope, from the request rollups: requests and 429s per minute, and each client's requests per minute
    (`clients`: (client, minute) to [admitted, refused]: the admitted are what the per-client limit is compared
    with, admitted and refused together what the client attempted), the clients exempt from the limit (`exempt`:
    their rollup labels) counted apart. Client labels are the rollups' own; `shown` maps each to what a page
    may show its reader (`shown_client_labels`)."""
    from apps.metrics.models import RequestRollup

    by_route = route_scopes()
    usage: dict[str, dict] = {}
    per_client: dict[tuple[str, str, datetime], list[int]] = defaultdict(lambda: [0, 0])
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
            per_client[(scope, client, minute)][1] += count
        else:
            per_client[(scope, client, minute)][0] += count
    # Kept by raw label: separate callers the page cannot name (two deleted clients) are separate clients, not
    # one "unrecognised client" made of their sum; a label is replaced only where it is shown.
    shown = shown_client_labels({client for _, client, _ in per_client}, names_clients=names_clients)
    exempt = exempt_clients(shown)
    for (scope, client, minute), counts in per_client.items():
        usage[scope].setdefault("clients", {})[(client, minute)] = counts
    for entry in usage.values():
        entry.setdefault("clients", {})
        entry["exempt"] = exempt
        entry["shown"] = shown
        entry["minutes"] = [[at.isoformat(), *counts] for at, counts in sorted(entry["minutes"].items())]
    return usage


@dataclass(frozen=True, slots=True)
class MinuteOfChanges:
    """A minute in which a policy's factor changed: the factor at its start, the highest set in it, the last."""

    minute: datetime
    first_old: float
    top_new: float
    last_new: float


def factor_changes_by_minute(*, since: datetime) -> dict[int, list[MinuteOfChanges]]:
    """Per policy, the minutes since `since` in which its factor changed, oldest first: at most one row a minute
    whatever the history holds (an admin edit records a change too), folded in the database."""
    # Cut in UTC, as the rollups' minutes it is matched with: cut on TIME_ZONE's clock, a minute of the repeated
    # hour the night the clocks go back came back as its first occurrence, an hour early.
    minute = TruncMinute("at", tzinfo=UTC)
    by_minute = {"partition_by": [F("policy_id"), minute]}
    rows = (
        RateLimitAdjustment.objects.filter(at__gte=since)
        .annotate(
            minute=minute,
            first_old=Window(FirstValue("old_factor"), order_by=[F("at").asc(), F("id").asc()], **by_minute),
            last_new=Window(FirstValue("new_factor"), order_by=[F("at").desc(), F("id").desc()], **by_minute),
            top_new=Window(Max("new_factor"), **by_minute),
        )
        .values_list("policy_id", "minute", "first_old", "top_new", "last_new")
        .order_by()
        .distinct()
    )
    changes: dict[int, list[MinuteOfChanges]] = defaultdict(list)
    for policy_id, at, first_old, top_new, last_new in sorted(rows, key=lambda row: (row[0], row[1])):
        changes[policy_id].append(MinuteOfChanges(at, first_old, top_new, last_new))
    return changes


def factors_in_force(policy: RateLimitPolicy, changes: list[MinuteOfChanges]) -> Callable[[datetime], float]:
    """The policy's adaptive factor in each minute, from the minutes its factor changed in (oldest first): a
    minute it changed in gets the highest factor in force during it (a client's minute is never read against a
    limit lower than the one it met). A tightening that lapsed with no change recorded yet (the controller
    stopped) counts as lifted from when it lapsed, as the limiter lifted it."""
    lapsed_from = None
    if policy.tightening_lapsed(policy.database_now):
        lapsed_from = policy.signal_read_at + TIGHTENING_LAPSES_AFTER if policy.signal_read_at else None
        lapsed_from = lapsed_from or policy.database_now - timedelta(days=365 * 100)

    def factor_at(minute: datetime) -> float:
        end = minute + timedelta(minutes=1)
        for changed in changes:
            if changed.minute == minute:
                return max(changed.first_old, changed.top_new)
        before = [c for c in changes if c.minute < minute]
        after = [c for c in changes if c.minute > minute]
        if after:
            return before[-1].last_new if before else after[0].first_old
        if lapsed_from is not None and lapsed_from < end:
            return 1.0
        return before[-1].last_new if before else policy.current_factor

    return factor_at


def limit_changes_since(*, since: datetime) -> dict[int, list[tuple[datetime, int, int, int, int]]]:
    """Per policy, the admin edits of its limit since `since`, oldest first: (at, old requests, old period, new
    requests, new period)."""
    rows = RateLimitLimitChange.objects.filter(at__gte=since).order_by("at", "id")
    changes: dict[int, list[tuple[datetime, int, int, int, int]]] = defaultdict(list)
    for policy_id, *change in rows.values_list(
        "policy_id", "at", "old_requests", "old_period_seconds", "new_requests", "new_period_seconds"
    ):
        changes[policy_id].append(tuple(change))
    return changes


def limits_in_force(
    policy: RateLimitPolicy, changes: list[tuple[datetime, int, int, int, int]]
) -> Callable[[datetime], list[tuple[int, int]]]:
    """The configured limits (requests, period) in force during each minute, from the admin edits since it (oldest
    first): the one at its start, and each an edit in it set. An edit after the minute says what was in force
    then (its old limit); with none after it, the policy's own."""

    def limits_at(minute: datetime) -> list[tuple[int, int]]:
        end = minute + timedelta(minutes=1)
        later = [change for change in changes if change[0] >= minute]
        limits = [(later[0][1], later[0][2]) if later else (policy.requests, policy.period_seconds)]
        limits += [(new_requests, new_period) for at, _, _, new_requests, new_period in later if at < end]
        return limits

    return limits_at


def policy_overview(*, user=None, now: datetime | None = None, minutes: int = 60) -> list[dict]:
    """Every policy with its limit in force, the last hour's usage against it and its adaptive changes; the
    scopes with the most 429s first, then by priority and scope. API clients are named only to a `user` who
    may see their names (`may_name_clients`); to anyone else (and with no user) they are "API client #<id>"."""
    from django.utils import timezone

    now = now or timezone.now()
    since = now - timedelta(minutes=minutes)
    usage = scope_usage(since=since, until=now, names_clients=may_name_clients(user))
    # The latest 20 of each policy in the query itself (a window function): the history grows by a row per
    # step, and the page must not read all of it to show 20.
    # The limit in force by the database's clock, as the limiter judges a lapse.
    policies = RateLimitPolicy.objects.annotate(database_now=Now()).prefetch_related(
        Prefetch("adjustments", queryset=RateLimitAdjustment.objects.order_by("-at", "-id")[:20], to_attr="latest")
    )
    # Each minute's usage is read against the limit in force then (a limit tightened since must not make the
    # requests sent under the higher one read as over it): the window's recorded changes, oldest first.
    in_window = factor_changes_by_minute(since=since)
    edited = limit_changes_since(since=since)
    rows = []
    for policy in policies.order_by("priority", "scope"):
        used = usage.get(
            policy.scope, {"requests": 0, "refused": 0, "minutes": [], "clients": {}, "exempt": set(), "shown": {}}
        )
        in_force = policy.requests_in_force(policy.database_now)
        busiest = _busiest_client(
            policy, used, factors_in_force(policy, in_window[policy.pk]), limits_in_force(policy, edited[policy.pk])
        )
        rows.append({
            "id": policy.pk, "scope": policy.scope, "description": policy.description, "enabled": policy.enabled,
            "requests": policy.requests, "effective_requests": in_force,
            "period_seconds": policy.period_seconds, "burst_per_second": policy.burst_per_second,
            "fail_open": policy.fail_open, "priority": policy.priority, "adaptive": policy.adaptive,
            "current_factor": policy.current_factor,
            "signal_read_at": policy.signal_read_at.isoformat() if policy.signal_read_at else None,
            "usage": {"requests": used["requests"], "refused": used["refused"], "minutes": used["minutes"], **busiest},
            "adjustments": [
                {"at": a.at.isoformat(), "direction": a.direction, "old_factor": a.old_factor,
                 "new_factor": a.new_factor, "reason": a.reason}
                for a in policy.latest
            ],
        })  # fmt: skip
    # The scopes refusing most first: those are what an operator opens the page for. Then by priority.
    rows.sort(key=lambda row: -row["usage"]["refused"])
    return rows


def _busiest_client(
    policy: RateLimitPolicy,
    used: dict,
    factor_at: Callable[[datetime], float],
    limits_at: Callable[[datetime], list[tuple[int, int]]],
) -> dict:
    """The client that attempted the most in one minute against the limit in force in that minute (the configured
    limit then, the highest where an admin edited it in that minute, times the adaptive factor then; admitted and
    refused together: a client hammering far past its limit is admitted no more than one just at it, and was
    named after it, or not at all); clients exempt from the limit (a load test's token: nothing refuses it, so
    a share of it said nothing) are counted apart. Each signed-in user is their own client (`user:<id>`), as
    the limiter limits each on their own. Ranked on the rollups' raw labels: two callers the page cannot name
    are two clients, each shown as "unrecognised client" only if it is the busiest."""
    busiest = {"busiest_client": None, "busiest_client_minute": None, "busiest_client_per_minute": 0,
               "busiest_client_attempted": 0, "busiest_client_refused": 0,
               "busiest_client_limit_per_minute": None, "busiest_client_share": 0.0}  # fmt: skip
    rank = (0.0, 0)
    exempt_requests, exempt_names = 0, set()
    for (client, minute), (admitted, refused) in used["clients"].items():
        attempted = admitted + refused
        if client in used["exempt"]:
            exempt_requests += attempted
            exempt_names.add(used["shown"].get(client, UNRECOGNISED_CLIENT))
            continue
        factor = factor_at(minute)
        limit = max(max(1, int(round(requests * factor, 6))) * 60 / period for requests, period in limits_at(minute))
        if (attempted / limit, attempted) > rank:
            rank = (attempted / limit, attempted)
            shown = used["shown"].get(client, UNRECOGNISED_CLIENT)
            busiest = {"busiest_client": shown, "busiest_client_minute": minute.isoformat(),
                       "busiest_client_per_minute": admitted, "busiest_client_attempted": attempted,
                       "busiest_client_refused": refused, "busiest_client_limit_per_minute": round(limit, 4),
                       "busiest_client_share": round(admitted / limit, 4)}  # fmt: skip
    return {**busiest, "exempt_requests": exempt_requests, "exempt_clients": sorted(exempt_names)}
