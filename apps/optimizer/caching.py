"""The caching optimizer: measure each namespace's hit rate and staleness, and recommend the TTL, L1
bound and stale window that reach the target inside the namespace's clinical freshness limit.

The TTL model is the TTL cache under independent reads: a key read at rate r and kept T seconds after
each load serves r·T hits per load, so its hit rate is rT / (1 + rT). Solving for the rate that the
measured hit rate implies, and back for the target, gives the TTL to try; the next run measures what
the change really did (Recommendation.outcome["measured_after"]), so the model is never trusted blindly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from apps.caching.models import MAX_TTL_SECONDS, CachePolicy
from apps.caching.selectors import cache_stats
from apps.metrics.selectors import cache_reads
from apps.optimizer.types import Draft

# Fewer reads than this in the window say too little about a hit rate to act on.
MIN_READS = 200
# L1 evicting more than this share of its lookups is too small for its working set.
L1_EVICTION_SHARE = 0.10
# A PHI namespace serving more than this share of reads stale gets a shorter stale window.
STALE_SHARE_LIMIT = 0.05
# Lowering a TTL (fresher data) is only proposed when the target is met with this margin ...
LOWER_MARGIN = 0.05
# ... and when the TTL it needs is under half the current one (no churn over small gains).
LOWER_FACTOR = 0.5
MIN_TTL_SECONDS = 60


def ttl_for_hit_rate(*, ttl_seconds: float, measured: float, target: float) -> float:
    """The TTL at which a TTL cache with the measured behaviour reaches the target hit rate."""
    measured = min(max(measured, 0.01), 0.999)
    target = min(max(target, 0.01), 0.999)
    return ttl_seconds * (target / (1 - target)) / (measured / (1 - measured))


def predicted_hit_rate(*, ttl_seconds: float, measured: float, new_ttl_seconds: float) -> float:
    measured = min(max(measured, 0.01), 0.999)
    reads_per_ttl = measured / (1 - measured) * new_ttl_seconds / ttl_seconds
    return reads_per_ttl / (1 + reads_per_ttl)


def namespace_figures(*, window: timedelta, now: datetime) -> list[dict]:
    """Per policy: reads and hit rate in the window, staleness and L1 pressure since counters began."""
    totals = cache_stats()
    figures = []
    for policy in CachePolicy.objects.order_by("namespace"):
        requests, loads = cache_reads(namespace=policy.namespace, since=now - window, until=now)
        summary = totals.get(policy.namespace, {"tiers": {}, "requests": 0, "stale_serves": 0})
        source = "window"
        if requests < MIN_READS and summary["requests"] >= MIN_READS:
            # The per-minute series start once the metrics beat has run; the counters go further back.
            requests, loads, source = summary["requests"], summary["tiers"]["source"]["loads"], "since counters began"
        l1 = summary["tiers"].get("l1", {})
        l1_lookups = l1.get("hits", 0) + l1.get("misses", 0)
        figures.append(
            {
                "namespace": policy.namespace,
                "enabled": policy.enabled,
                "contains_phi": policy.contains_phi,
                "ttl_seconds": policy.ttl_seconds,
                "max_ttl_seconds": policy.max_ttl_seconds,
                "stale_while_revalidate_seconds": policy.stale_while_revalidate_seconds,
                "l1_enabled": policy.l1_enabled,
                "l1_max_entries": policy.l1_max_entries,
                "reads": requests,
                "loads": loads,
                "hit_rate": round(1 - loads / requests, 4) if requests else None,
                "reads_source": source,
                "stale_share": round(summary["stale_serves"] / summary["requests"], 4) if summary["requests"] else None,
                "l1_entries": l1.get("entries", 0),
                "l1_fullest_process_entries": l1.get("fullest_process_entries", 0),
                "l1_bytes": l1.get("bytes", 0),
                "l1_evictions": l1.get("evictions", 0),
                "l1_eviction_share": round(l1.get("evictions", 0) / l1_lookups, 4) if l1_lookups else None,
                "mean_load_ms": summary.get("mean_load_ms"),
            }
        )
    return figures


def recommendations_for_all(figures: list[dict], *, target: float) -> list[Draft]:
    """Every namespace's drafts. A larger L1 bound is offered only within the room the other namespaces leave
    in a process's L1 memory (CACHE_L1_MAX_BYTES) at their own bounds, larger ones proposed here included:
    one namespace at a time, several proposals each "fitting" the budget together overran it."""
    footprint = {figure["namespace"]: _l1_footprint(figure, figure["l1_max_entries"]) for figure in figures}
    drafts = []
    for figure in figures:
        others = sum(size for namespace, size in footprint.items() if namespace != figure["namespace"])
        mine = recommendations_for(figure, target=target, l1_room_bytes=settings.CACHE_L1_MAX_BYTES - others)
        for draft in mine:
            if draft.kind == "cache_l1_entries":
                footprint[figure["namespace"]] = _l1_footprint(figure, draft.change["l1_max_entries"])
        drafts += mine
    return drafts


def _l1_footprint(figure: dict, bound: int) -> float:
    """What a namespace's L1 may take in one process at `bound` entries of its measured mean size."""
    if not figure["enabled"] or not figure["l1_enabled"] or not figure["l1_entries"]:
        return 0.0
    return figure["l1_bytes"] / figure["l1_entries"] * bound


def recommendations_for(figure: dict, *, target: float, l1_room_bytes: float | None = None) -> list[Draft]:
    """What would bring one namespace to the target, or keep it there with fresher data. `l1_room_bytes`: the
    L1 memory the other namespaces leave this one (all of CACHE_L1_MAX_BYTES when not given)."""
    if not figure["enabled"]:
        return []
    drafts = []
    namespace, ttl, measured = figure["namespace"], figure["ttl_seconds"], figure["hit_rate"]
    evidence = {key: figure[key] for key in ("reads", "loads", "hit_rate", "reads_source", "ttl_seconds")}
    if measured is not None and figure["reads"] >= MIN_READS:
        drafts.extend(_ttl_drafts(figure, measured=measured, ttl=ttl, target=target, evidence=evidence))
    drafts.extend(_l1_drafts(figure, room=settings.CACHE_L1_MAX_BYTES if l1_room_bytes is None else l1_room_bytes))
    if figure["contains_phi"] and (figure["stale_share"] or 0) > STALE_SHARE_LIMIT:
        window = figure["stale_while_revalidate_seconds"]
        drafts.append(
            Draft(
                kind="cache_stale_window",
                subject=namespace,
                title=f"Shorten {namespace}'s stale window to {window // 2} s",
                reason=f"{figure['stale_share']:.1%} of its reads were served stale (limit "
                f"{STALE_SHARE_LIMIT:.0%} for PHI); a shorter window bounds how old a clinician's data can be.",
                change={"stale_while_revalidate_seconds": window // 2},
                evidence={"stale_share": figure["stale_share"], "stale_while_revalidate_seconds": window},
            )
        )
    return drafts


def _ttl_drafts(figure: dict, *, measured: float, ttl: int, target: float, evidence: dict) -> list[Draft]:
    namespace, limit = figure["namespace"], figure["max_ttl_seconds"]
    needed = ttl_for_hit_rate(ttl_seconds=ttl, measured=measured, target=target)
    if measured < target:
        ceiling = min(limit or ttl, MAX_TTL_SECONDS - figure["stale_while_revalidate_seconds"])
        new_ttl = min(round(needed), ceiling)
        if new_ttl <= ttl:
            return [
                Draft(
                    kind="cache_ttl_limit",
                    subject=namespace,
                    title=f"{namespace} cannot reach {target:.0%} inside its freshness limit",
                    reason=f"Hit rate {measured:.1%} at TTL {ttl} s; the model needs {round(needed)} s, "
                    + (
                        f"above its limit of {limit} s. Raise the limit if clinically acceptable."
                        if limit
                        else "and the policy sets no freshness limit, so the optimizer keeps its TTL: set one."
                    ),
                    change={},
                    evidence={**evidence, "needed_ttl_seconds": round(needed), "max_ttl_seconds": limit},
                    actionable=False,
                )
            ]
        expected = predicted_hit_rate(ttl_seconds=ttl, measured=measured, new_ttl_seconds=new_ttl)
        capped = " (capped at its freshness limit)" if new_ttl < round(needed) else ""
        return [
            Draft(
                kind="cache_ttl",
                subject=namespace,
                title=f"Raise {namespace}'s TTL from {ttl} s to {new_ttl} s{capped}",
                reason=f"Hit rate {measured:.1%} over {figure['reads']:,} reads is under the {target:.0%} target; "
                f"the TTL-cache model expects {expected:.1%} at {new_ttl} s.",
                change={"ttl_seconds": new_ttl},
                evidence={**evidence, "expected_hit_rate": round(expected, 4), "needed_ttl_seconds": round(needed)},
            )
        ]
    lower = max(
        MIN_TTL_SECONDS, round(ttl_for_hit_rate(ttl_seconds=ttl, measured=measured, target=target + LOWER_MARGIN))
    )
    if measured >= target + LOWER_MARGIN and lower < ttl * LOWER_FACTOR:
        expected = predicted_hit_rate(ttl_seconds=ttl, measured=measured, new_ttl_seconds=lower)
        return [
            Draft(
                kind="cache_ttl",
                subject=namespace,
                title=f"Lower {namespace}'s TTL from {ttl} s to {lower} s for fresher data",
                reason=f"Hit rate {measured:.1%} is well above the {target:.0%} target; the model expects "
                f"{expected:.1%} at {lower} s, so clinicians would see data at most {lower} s old.",
                change={"ttl_seconds": lower},
                evidence={**evidence, "expected_hit_rate": round(expected, 4)},
            )
        ]
    return []


def _l1_drafts(figure: dict, *, room: float) -> list[Draft]:
    share, bound = figure["l1_eviction_share"], figure["l1_max_entries"]
    if not figure["l1_enabled"] or share is None or share <= L1_EVICTION_SHARE:
        return []
    if figure["l1_fullest_process_entries"] < 0.9 * bound:
        # The bound is per process (entries are summed over processes): no process near it evicted for the
        # process-wide byte bound, not this namespace's entry bound.
        return []
    per_entry = figure["l1_bytes"] / figure["l1_entries"] if figure["l1_entries"] else 0
    new_bound = bound * 2
    # At most half a process's L1 for one namespace, and no more than the others leave it.
    budget = min(settings.CACHE_L1_MAX_BYTES // 2, room)
    if per_entry * new_bound > budget:
        new_bound = int(budget // per_entry) if per_entry else bound
    if new_bound <= bound:
        return []
    return [
        Draft(
            kind="cache_l1_entries",
            subject=figure["namespace"],
            title=f"Let {figure['namespace']}'s L1 hold {new_bound:,} entries (now {bound:,})",
            reason=f"L1 evicted {figure['l1_evictions']:,} entries, {share:.1%} of its lookups, while full; each "
            f"entry takes about {per_entry:,.0f} bytes, so the new bound needs about "
            f"{per_entry * new_bound / 2**20:,.1f} MiB per process.",
            change={"l1_max_entries": new_bound},
            evidence={
                key: figure[key]
                for key in (
                    "l1_evictions",
                    "l1_eviction_share",
                    "l1_entries",
                    "l1_fullest_process_entries",
                    "l1_bytes",
                    "l1_max_entries",
                )
            },
        )
    ]


def change_still_valid(namespace: str, change: dict, evidence: dict) -> None:
    """Refuse a proposal the policy has moved past since it was made (it is applied from admin, maybe days
    later): a value an admin has changed meanwhile (the proposal, computed on the old one, would overwrite
    theirs), or a TTL raise on a namespace whose freshness limit was removed meanwhile (the optimizer never
    raises a TTL without one; above a limit, the policy's own validation refuses it)."""
    policy = CachePolicy.objects.get(namespace=namespace)
    for field, value in change.items():
        seen, now = evidence.get(field), getattr(policy, field)
        if seen is not None and now not in (seen, value):
            raise ValueError(
                f"{namespace}'s {field} is {now} now, not the {seen} this was computed on: run the optimizer again."
            )
    ttl = change.get("ttl_seconds")
    if ttl is not None and ttl > policy.ttl_seconds and policy.max_ttl_seconds is None:
        raise ValueError(f"{namespace}'s TTL may not be raised to {ttl} s: it has no freshness limit now.")


def followups_measure(*, now: datetime) -> list[dict]:
    """The hit rate after each applied cache change against the one it was made on: measured, not assumed.

    Stored on the recommendation once enough reads have followed it, so every later run shows it.
    """
    from apps.optimizer.models import Recommendation

    results = []
    applied = Recommendation.objects.filter(step="caching", status=Recommendation.Status.APPLIED).exclude(
        decided_at=None
    )
    for recommendation in applied.order_by("-decided_at")[:50]:
        after = recommendation.outcome.get("measured_after")
        if after is None:
            requests, loads = cache_reads(namespace=recommendation.subject, since=recommendation.decided_at, until=now)
            if requests >= MIN_READS:
                after = {"reads": requests, "hit_rate": round(1 - loads / requests, 4), "measured_at": now.isoformat()}
                recommendation.outcome = {**recommendation.outcome, "measured_after": after}
                recommendation.save(update_fields=["outcome"])
        results.append(
            {
                "recommendation": recommendation.pk,
                "namespace": recommendation.subject,
                "title": recommendation.title,
                "decided_at": recommendation.decided_at.isoformat(),
                "hit_rate_before": recommendation.evidence.get("hit_rate"),
                "expected": recommendation.evidence.get("expected_hit_rate"),
                "measured_after": after,
            }
        )
    return results
