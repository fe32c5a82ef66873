"""Writes of the caching app: policies, namespace clears, counters, and the L3 tier's housekeeping."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from apps.caching.defaults import DEFAULT_POLICIES, FRESHNESS_LIMITS, namespace_check
from apps.caching.models import (
    SCOPE_GENERATION_IDLE_SECONDS,
    CacheEntry,
    CachePolicy,
    CacheScopeGeneration,
    CacheStat,
    next_generation,
)
from apps.core.services import fields_update

logger = logging.getLogger(__name__)


def cache_policy_ensure(*, namespace: str) -> CachePolicy:
    """The namespace's policy, created with safe defaults (encrypted, 10 min) when code first uses it.

    Every read of a namespace new to its process comes here first (a direct `get_or_load`, the decorator, the
    brief's API): a name no policy can have is a ValueError that says so."""
    namespace_check(namespace)
    try:
        return CachePolicy.objects.get(namespace=namespace)
    except CachePolicy.DoesNotExist:
        pass
    defaults = DEFAULT_POLICIES.get(namespace, {"description": "Created on first use"})
    policy = CachePolicy(namespace=namespace, max_ttl_seconds=FRESHNESS_LIMITS.get(namespace), **defaults)
    policy.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:  # another process created it first
        return CachePolicy.objects.get(namespace=namespace)
    return policy


# What an optimizer (or any code outside admin) may change on a policy.
TUNABLE_FIELDS = frozenset({"ttl_seconds", "stale_while_revalidate_seconds", "l1_max_entries"})


@transaction.atomic
def cache_policy_update(*, namespace: str, **changes: int) -> tuple[CachePolicy, dict[str, int]]:
    """Change a policy's tunables after validating them; returns the policy and the values before.

    Saving bumps the policy generation every process polls (signals.py): live within about a second.
    """
    unknown = set(changes) - TUNABLE_FIELDS
    if unknown:
        raise ValueError(f"Not tunable: {', '.join(sorted(unknown))}")
    return fields_update(CachePolicy.objects.filter(namespace=namespace), changes)


@transaction.atomic
def cache_namespace_clear(*, namespace: str) -> CachePolicy:
    """Orphan every entry of a namespace in every tier and process: its key generation moves on.

    The bump alone makes every stored entry unreachable. The L3 rows go after the commit, in batches, in a
    task: deleted in this transaction, a large namespace ran past the admin request's timeout and the whole
    clear rolled back."""
    CachePolicy.objects.filter(namespace=namespace).update(generation=next_generation())
    policy = CachePolicy.objects.get(namespace=namespace)
    policy.save(update_fields=["updated_at"])  # post_save tells every process
    transaction.on_commit(lambda: _entries_delete_later(namespace))
    return policy


def _entries_delete_later(namespace: str) -> None:
    from apps.caching.tasks import delete_namespace_entries

    try:
        # Dropped if no worker takes it within the hour: prune_entries has every orphaned row within a day anyway.
        delete_namespace_entries.apply_async((namespace,), expires=3600)
    except Exception:  # the clear is done: an unreachable broker only leaves the orphaned rows to prune_entries
        logger.warning("the cleared namespace's L3 rows are left to the prune", exc_info=True)


def cache_namespace_entries_delete(*, namespace: str, batch_size: int = 1_000) -> int:
    """Delete a namespace's L3 rows in batches, each its own short transaction; the number deleted.

    For after a clear, whose generation bump already made them unreachable. Entries stored since the clear may
    go too: a miss each, never a wrong value."""
    deleted = 0
    rows = CacheEntry.objects.filter(namespace=namespace)
    while True:
        keys = list(rows.values_list("key", flat=True)[:batch_size])
        if not keys:
            return deleted
        deleted += rows.filter(key__in=keys).delete()[0]


def cache_stats_record(
    *, process: str, deltas: dict[tuple[str, str], dict[str, float]], l1_usage: dict[str, tuple[int, int]], using: str
) -> None:
    """Add one process's counters since its last flush; L1's entries and bytes are current values.

    All or nothing: the caller adds the whole flush back for its next one when this raises, so rows written
    before a failure must not stay (they were counted twice)."""
    touched = set(deltas) | {(namespace, "l1") for namespace in l1_usage}
    with transaction.atomic(using=using):
        for namespace, tier in sorted(touched):  # one order: concurrent flushes never lock them crosswise
            counters = {name: value for name, value in deltas.get((namespace, tier), {}).items() if value}
            gauges = {}
            if tier == "l1":
                entries, size = l1_usage.get(namespace, (0, 0))
                gauges = {"entries": entries, "bytes": max(size, 0)}
                counters.pop("bytes", None)
            if not counters and not gauges:
                continue
            # update() does not apply auto_now: the stamp says the process (and its L1 gauges) is alive.
            changes = (
                {name: F(name) + value for name, value in counters.items()} | gauges | {"updated_at": timezone.now()}
            )
            rows = CacheStat.objects.using(using).filter(namespace=namespace, tier=tier, process=process)
            if not rows.update(**changes):
                try:
                    with transaction.atomic(using=using):
                        CacheStat.objects.using(using).create(
                            namespace=namespace, tier=tier, process=process, **counters, **gauges
                        )
                except IntegrityError:
                    rows.update(**changes)


RETIRED_PROCESS = "(retired processes)"
COUNTERS = ("requests", "hits", "misses", "stale_serves", "loads", "load_seconds", "evictions", "errors")


def cache_stats_retire(*, silent_for: timedelta = timedelta(days=1)) -> int:
    """Fold the counters of processes silent this long into one row per namespace and tier; the rows folded.

    Every restart of a pod's workers starts rows of its own (namespaces x tiers per process): without this the
    table, and the sums every dashboard read makes over it, grew with each deploy. The totals stay; the L1
    gauges of a process that is gone count for nothing anyway. A process that was only idle and flushes
    again starts a new row, so nothing it adds is lost.
    """
    cutoff = timezone.now() - silent_for
    with transaction.atomic():
        # Locked: a late flush of one of these rows waits, then finds it gone and creates a fresh one.
        silent = list(
            CacheStat.objects.select_for_update()
            .filter(updated_at__lt=cutoff)
            .exclude(process=RETIRED_PROCESS)
            .values("pk", "namespace", "tier", *COUNTERS, "bytes")
        )
        if not silent:
            return 0
        folded: dict[tuple[str, str], dict[str, float]] = {}
        for row in silent:
            # L2's and L3's bytes are bytes written (a counter, folded); L1's what a process held (a gauge: 0).
            counters = COUNTERS if row["tier"] == CacheStat.Tier.L1 else (*COUNTERS, "bytes")
            sums = folded.setdefault((row["namespace"], row["tier"]), dict.fromkeys(counters, 0))
            for name in counters:
                sums[name] += row[name]
        for (namespace, tier), sums in folded.items():
            retired, _ = CacheStat.objects.select_for_update().get_or_create(
                namespace=namespace, tier=tier, process=RETIRED_PROCESS
            )
            gauges = {"entries": 0, "bytes": 0} if tier == CacheStat.Tier.L1 else {"entries": 0}
            CacheStat.objects.filter(pk=retired.pk).update(
                **{name: F(name) + value for name, value in sums.items()}, **gauges
            )
        CacheStat.objects.filter(pk__in=[row["pk"] for row in silent]).delete()
    return len(silent)


def cache_entries_prune(*, batch_size: int = 10_000) -> int:
    """Delete L3 entries past their stale window; the number deleted."""
    deleted = 0
    now = time.time()
    while True:
        keys = list(CacheEntry.objects.filter(stale_until__lt=now).values_list("key", flat=True)[:batch_size])
        if not keys:
            return deleted
        deleted += CacheEntry.objects.filter(key__in=keys).delete()[0]


def cache_scope_generations_prune(*, batch_size: int = 10_000) -> int:
    """Delete scope generation rows idle longer than any entry lives; the number deleted.

    One row per patient ever written stayed for ever. Once a scope is idle this long, every entry stored
    before its last write has expired, and those stored since only miss (the scope reads as never written);
    the next write starts the row again at the time in microseconds, past every generation it had.
    """
    from apps.caching.stack import POLICY_SCOPE

    # Twice the longest life of an entry: 48 h, or more if a policy was given a longer one outside admin.
    longest = CachePolicy.objects.aggregate(longest=Max(F("ttl_seconds") + F("stale_while_revalidate_seconds")))
    idle = max(SCOPE_GENERATION_IDLE_SECONDS, 2 * (longest["longest"] or 0))
    cutoff = timezone.now() - timedelta(seconds=idle)
    deleted = 0
    while True:
        idle_rows = CacheScopeGeneration.objects.filter(updated_at__lt=cutoff).exclude(scope=POLICY_SCOPE)
        scopes = list(idle_rows.values_list("scope", flat=True)[:batch_size])
        if not scopes:
            return deleted
        # Checked again as it deletes: a scope written meanwhile keeps its row.
        deleted += idle_rows.filter(scope__in=scopes).delete()[0]
