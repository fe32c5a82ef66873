"""Reads of the caching app: hit rates per namespace and tier, summed over every process."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Max, Q, Sum
from django.utils import timezone

from apps.caching.defaults import DEFAULT_POLICIES
from apps.caching.models import CacheStat

SUMMED = (
    *("requests", "hits", "misses", "stale_serves", "loads", "load_seconds"),
    *("evictions", "errors", "entries", "bytes"),
)
# L1's entries and bytes are what a process holds now: a process silent this long (ended, restarted
# with another pid, or idle while its entries expired) holds nothing anyone should count. Its counters
# stay in the totals.
L1_GAUGES_FRESH_FOR = timedelta(minutes=15)


def known_namespaces() -> set[str]:
    """The namespaces the code reads: the brief's, and any other a read has counted (its statistics)."""
    return set(DEFAULT_POLICIES) | set(CacheStat.objects.order_by().values_list("namespace", flat=True).distinct())


def unknown_namespace_warning(namespace: str) -> str | None:
    """What an admin is told on saving a policy of a namespace no code reads (a typo governs nothing, silently);
    None for a known one. A namespace of the product's own code counts once it has been read."""
    known = known_namespaces()
    if namespace in known:
        return None
    return (
        f"No code has read the cache namespace “{namespace}”: this policy governs nothing until code names it "
        f"(a typo?). Known namespaces: {', '.join(sorted(known))}."
    )


def cache_stats(*, namespace: str | None = None) -> dict[str, dict]:
    """Per namespace: totals per tier, the overall hit rate and mean load time."""
    rows = CacheStat.objects.all()
    if namespace:
        rows = rows.filter(namespace=namespace)
    alive = ~Q(tier=CacheStat.Tier.L1) | Q(updated_at__gte=timezone.now() - L1_GAUGES_FRESH_FOR)
    sums = rows.values("namespace", "tier").annotate(
        **{f"{name}_sum": Sum(name, filter=alive if name in ("entries", "bytes") else None) for name in SUMMED},
        # L1's entry bound is per process: the fullest live process says whether it binds, not the sum.
        fullest_process_entries=Max("entries", filter=alive),
    )
    report: dict[str, dict] = {}
    for row in sums:
        tiers = report.setdefault(row["namespace"], {"tiers": {}})["tiers"]
        tiers[row["tier"]] = {name: row[f"{name}_sum"] or 0 for name in SUMMED}
        if row["tier"] == CacheStat.Tier.L1:
            tiers[row["tier"]]["fullest_process_entries"] = row["fullest_process_entries"] or 0
    for summary in report.values():
        tiers = summary["tiers"]
        source = tiers.get("source", {})
        requests, loads = source.get("requests", 0), source.get("loads", 0)
        summary["requests"] = requests
        summary["hit_rate"] = round(1 - loads / requests, 4) if requests else None
        summary["stale_serves"] = sum(t.get("stale_serves", 0) for t in tiers.values())
        summary["mean_load_ms"] = round(1000 * source.get("load_seconds", 0) / loads, 3) if loads else None
        for tier in ("l1", "l2", "l3"):
            counts = tiers.get(tier)
            if counts:
                looked = counts["hits"] + counts["misses"]
                counts["hit_rate"] = round(counts["hits"] / looked, 4) if looked else None
    return report


def namespace_overview(*, now=None) -> list[dict]:
    """Every policy with its settings, its counters per tier and the last hour's hit rate (the dashboard)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.caching.models import CachePolicy
    from apps.metrics.selectors import cache_hit_rate

    now = now or timezone.now()
    stats = cache_stats()
    rows = []
    for policy in CachePolicy.objects.order_by("namespace"):
        summary = stats.get(policy.namespace, {"tiers": {}, "requests": 0, "hit_rate": None, "stale_serves": 0,
                                               "mean_load_ms": None})  # fmt: skip
        rows.append({
            "id": policy.pk, "namespace": policy.namespace, "description": policy.description,
            "enabled": policy.enabled, "contains_phi": policy.contains_phi, "encrypt": policy.encrypt,
            "tiers_enabled": [t for t in ("l1", "l2", "l3") if getattr(policy, f"{t}_enabled")],
            "ttl_seconds": policy.ttl_seconds, "max_ttl_seconds": policy.max_ttl_seconds,
            "stale_while_revalidate_seconds": policy.stale_while_revalidate_seconds,
            "l1_max_entries": policy.l1_max_entries,
            "hit_rate_1h": cache_hit_rate(namespace=policy.namespace, since=now - timedelta(hours=1), until=now),
            **summary,
        })  # fmt: skip
    return rows
