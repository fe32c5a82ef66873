"""Writes of the rate-limit app: adaptive tightening and recovery, each change recorded."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy


@dataclass(frozen=True)
class LoadSignals:
    cpu_pct: float | None
    p95_ms_by_service: dict[int, float]


def _over_and_calm(policy: RateLimitPolicy, signals: LoadSignals) -> tuple[list[str], bool]:
    """The thresholds crossed (reasons), and whether every signal is calm enough to recover."""
    reasons, calm = [], True
    if signals.cpu_pct is not None:
        if signals.cpu_pct > policy.cpu_threshold_pct:
            reasons.append(f"CPU {signals.cpu_pct:.0f}% > {policy.cpu_threshold_pct:.0f}%")
        calm &= signals.cpu_pct < policy.cpu_threshold_pct * policy.recover_below
    if policy.service_id is not None:
        p95 = signals.p95_ms_by_service.get(policy.service_id)
        threshold = policy.p95_threshold_ms or policy.service.slo_p95_ms
        if p95 is not None:
            if p95 > threshold:
                reasons.append(f"{policy.service.name} p95 {p95:.0f} ms > {threshold} ms")
            calm &= p95 < threshold * policy.recover_below
    return reasons, calm


@transaction.atomic
def ratelimits_adapt(*, signals: LoadSignals) -> list[RateLimitAdjustment]:
    """Tighten adaptive policies whose signals are over threshold; recover them, a step at a time,
    once every signal is below its threshold times `recover_below` (the hysteresis band)."""
    changes = []
    policies = RateLimitPolicy.objects.select_for_update(of=("self",)).select_related("service")
    for policy in policies.filter(adaptive=True):
        reasons, calm = _over_and_calm(policy, signals)
        old = policy.current_factor
        if reasons:
            new, direction, reason = max(policy.min_factor, old * policy.tighten_factor), "tighten", "; ".join(reasons)
        elif calm and old < 1.0:
            new, direction, reason = min(1.0, old / policy.tighten_factor), "recover", "signals back under threshold"
        else:
            continue
        if abs(new - old) < 1e-9:
            continue
        policy.current_factor = new
        policy.save(update_fields=["current_factor", "updated_at"])
        changes.append(
            RateLimitAdjustment.objects.create(
                policy=policy,
                direction=direction,
                old_factor=old,
                new_factor=new,
                reason=reason[:200],
                cpu_pct=signals.cpu_pct,
                p95_ms=signals.p95_ms_by_service.get(policy.service_id) if policy.service_id else None,
            )
        )
    return changes
