"""Writes of the rate-limit app: adaptive tightening and recovery, each change recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Now
from django.utils import timezone

from apps.ratelimits.models import (
    MAX_PERIOD_SECONDS,
    TIGHTENING_LAPSES_AFTER,
    RateLimitAdjustment,
    RateLimitHit,
    RateLimitLimitChange,
    RateLimitPolicy,
)

# The span the signals are read over (CPU samples of every host, the service's p95), and the least time
# between two adaptive steps of a policy: a step is taken on a window that holds none of the minutes the
# step before it was taken on, so one bad minute is one step, not one per run (the task runs every 15 s).
SIGNAL_WINDOW = timedelta(minutes=3)
STEP_DWELL = SIGNAL_WINDOW
# Fewer served requests in the window and a service's "p95" is its slowest one or two: no signal, neither
# over (a quiet service's one cold start would shed a scope) nor in the way of a recovery.
P95_MIN_REQUESTS = 20
# Factors are kept to this many decimals: a product of binary floats drifts (0.42 x 0.42 / 0.42 / 0.42 is
# 0.9999999999999998, one more recovery short of the configured limit).
FACTOR_DECIMALS = 9


@dataclass(frozen=True)
class LoadSignals:
    cpu_pct: float | None
    p95_ms_by_service: dict[int, float]


def _over_and_calm(policy: RateLimitPolicy, signals: LoadSignals) -> tuple[dict[str, str], bool, bool]:
    """The thresholds crossed (the signal, "cpu" or "p95:<service>", to the reason), whether the signals are
    calm enough to recover (at least one read, and every one read below its band), and whether any was read.
    With none read (no CPU sample, too few requests: a monitor starved by the very overload) nothing says the
    load has gone; the factor holds, until TIGHTENING_LAPSES_AFTER without a reading."""
    over, calm, read = {}, True, False
    if signals.cpu_pct is not None:
        read = True
        if signals.cpu_pct > policy.cpu_threshold_pct:
            over["cpu"] = f"CPU {signals.cpu_pct:.0f}% > {policy.cpu_threshold_pct:.0f}%"
        calm &= signals.cpu_pct < policy.cpu_threshold_pct * policy.recover_below
    if policy.service_id is not None:
        p95 = signals.p95_ms_by_service.get(policy.service_id)
        threshold = policy.p95_threshold_ms or policy.service.slo_p95_ms
        if p95 is not None:
            read = True
            if p95 > threshold:
                over[f"p95:{policy.service_id}"] = f"{policy.service.name} p95 {p95:.0f} ms > {threshold} ms"
            calm &= p95 < threshold * policy.recover_below
    return over, calm and read, read


def _is_shed(policy: RateLimitPolicy) -> bool:
    """Whether the controller may move this policy's factor: adaptive, and not a priority-1 scope."""
    return policy.adaptive and policy.priority > 1


def _record(
    policy: RateLimitPolicy, new: float, reason: str, signals: LoadSignals | None = None, *, now: datetime
) -> RateLimitAdjustment:
    """Set the factor and record the change, named by what it did to the limit (a lower factor tightens).
    With `signals`, it is a step of the controller, and the next one waits STEP_DWELL; a change that only
    follows an edit (adaptive off, a raised floor) starts no wait."""
    old = policy.current_factor
    new = round(new, FACTOR_DECIMALS)
    policy.current_factor = new
    if signals is not None:
        policy.last_step_at = now
    policy.save(update_fields=["current_factor", "last_step_at", "updated_at"])
    direction = RateLimitAdjustment.Direction.TIGHTEN if new < old else RateLimitAdjustment.Direction.RECOVER
    return RateLimitAdjustment.objects.create(
        policy=policy,
        direction=direction,
        old_factor=old,
        new_factor=new,
        reason=reason[:200],
        cpu_pct=signals.cpu_pct if signals else None,
        p95_ms=signals.p95_ms_by_service.get(policy.service_id) if signals and policy.service_id else None,
    )


def _settle(policy: RateLimitPolicy, now: datetime) -> RateLimitAdjustment | None:
    """Bring the factor within what the policy's settings allow now: 1.0 when it is not shed (adaptive turned
    off, or priority 1) or its tightening has lapsed (the limiter went back to the configured limit then), at
    least `min_factor` when it is shed (the floor may have been raised)."""
    old = policy.current_factor
    if not _is_shed(policy):
        if old == 1.0:
            return None
        why = "adaptive turned off" if not policy.adaptive else "priority 1 is never shed"
        return _record(policy, 1.0, f"{why}: back to the configured limit", now=now)
    if policy.tightening_lapsed(now):
        since = f"{policy.signal_read_at:%Y-%m-%d %H:%M} UTC" if policy.signal_read_at else "it was tightened"
        minutes = TIGHTENING_LAPSES_AFTER.seconds // 60
        return _record(policy, 1.0, f"no load signal read since {since}: lapsed after {minutes} min, back to the "
                                    "configured limit", now=now)  # fmt: skip
    if old < policy.min_factor:
        return _record(policy, policy.min_factor, f"min_factor raised to {policy.min_factor:g}", now=now)
    return None


@transaction.atomic
def ratelimit_policy_settle(*, policy_id: int) -> RateLimitAdjustment | None:
    """After an edit of the policy (admin): a policy no longer adaptive gets its configured limit back at once,
    and a raised `min_factor` lifts the factor to it; a row records the change (it starts no wait)."""
    policy = RateLimitPolicy.objects.select_for_update().annotate(database_now=Now()).get(pk=policy_id)
    return _settle(policy, policy.database_now)


@transaction.atomic
def ratelimit_policy_edit_save(*, policy: RateLimitPolicy, fields: list[str]) -> RateLimitLimitChange | None:
    """Save an admin's edit of these fields of a stored policy (the controller's are left as the row has them
    now). An edit of the limit (`requests` or `period_seconds`) is recorded: the overview reads each past minute
    against the limit in force then (selectors.limits_in_force), and only the adaptive factor had a history."""
    before = (
        RateLimitPolicy.objects.select_for_update().filter(pk=policy.pk).values("requests", "period_seconds").first()
    )
    policy.save(update_fields=fields)
    if before is None or (before["requests"], before["period_seconds"]) == (policy.requests, policy.period_seconds):
        return None
    if policy.period_seconds != before["period_seconds"]:
        # Lengthened: the limiter's logs were set to expire by the shorter period, and are kept for the new one.
        # Shortened: a keep floor an earlier lengthening left would keep every log for the longer period.
        from apps.ratelimits.throttling import limiter

        scope, period = policy.scope, policy.period_seconds
        lengthened = period > before["period_seconds"]
        transaction.on_commit(lambda: limiter.period_edited(scope, period, lengthened=lengthened))
    return RateLimitLimitChange.objects.create(
        policy=policy,
        old_requests=before["requests"],
        new_requests=policy.requests,
        old_period_seconds=before["period_seconds"],
        new_period_seconds=policy.period_seconds,
    )


@dataclass
class _State:
    policy: RateLimitPolicy
    over: dict[str, str]
    calm: bool
    read: bool

    def settled_since(self, recent: datetime) -> bool:
        """Its last step's effect has been read over a whole signal window."""
        return not (self.policy.last_step_at and self.policy.last_step_at > recent)


def _sheds_first(lower: _State, state: _State, signal: str, recent: datetime) -> bool:
    """A less important policy under the same pressure is shed first: down to its floor, and a signal window
    after its last step (the pressure read once that step took effect) before `state` is touched."""
    return (
        lower.policy.priority > state.policy.priority
        and signal in lower.over
        and (lower.policy.current_factor > lower.policy.min_factor + 1e-9 or not lower.settled_since(recent))
    )


def _recovers_first(higher: _State, state: _State, recent: datetime) -> bool:
    """A more important policy, calm too, gets its limit back first, and a window passes before the next."""
    return (
        higher.policy.priority < state.policy.priority
        and higher.calm
        and (higher.policy.current_factor < 1.0 or not higher.settled_since(recent))
    )


@transaction.atomic
def ratelimits_adapt(*, signals: LoadSignals) -> list[RateLimitAdjustment]:
    """Tighten adaptive policies whose signals are over threshold; recover them, a step at a time,
    once every signal is below its threshold times `recover_below` (the hysteresis band). A policy steps
    at most once per STEP_DWELL. Priority-1 scopes are never shed; a policy turned off, or a priority-1 one
    with a tightened factor, is set back to its configured limit.

    Graded: under one pressure (the CPU, a service's p95) the least important policy is shed first, and the
    next only if the pressure persists a window after the one before reached its floor; of the calm ones the
    most important recovers first, the next a window after it is back at its configured limit."""
    changes = []
    # Steps and readings are stamped with the database's clock and compared with it: the task runs on any worker,
    # and one whose clock ran ahead read another's step as past the dwell (a second step 15 s after the first).
    policies = RateLimitPolicy.objects.select_for_update(of=("self",)).select_related("service")
    rows = list(policies.filter(Q(adaptive=True) | ~Q(current_factor=1.0)).annotate(database_now=Now()))
    if not rows:
        return changes
    now = rows[0].database_now
    recent = now - STEP_DWELL
    states = []
    for policy in rows:
        settled = _settle(policy, now)
        if settled:
            changes.append(settled)
        if _is_shed(policy) and policy.enabled:  # a disabled policy limits nothing: no step of it sheds load
            states.append(_State(policy, *_over_and_calm(policy, signals)))
    # Read, a signal keeps the policy's factor in force (see RateLimitPolicy.tightening_lapsed).
    for state in states:
        if state.read:
            state.policy.signal_read_at = now
    RateLimitPolicy.objects.filter(pk__in=[s.policy.pk for s in states if s.read]).update(signal_read_at=now)
    # Least important first, so that a step of this run holds back the more important ones.
    for state in sorted(states, key=lambda s: -s.policy.priority):
        policy, old = state.policy, state.policy.current_factor
        if not state.over or not state.settled_since(recent):
            continue
        # Held while every pressure on it has a less important policy left to shed (one only it can relieve,
        # its own service's p95, does not wait).
        if all(any(_sheds_first(other, state, signal, recent) for other in states) for signal in state.over):
            continue
        new = max(policy.min_factor, old * policy.tighten_factor)
        if abs(new - old) >= 1e-9:
            changes.append(_record(policy, new, "; ".join(state.over.values()), signals, now=now))
    for state in sorted(states, key=lambda s: s.policy.priority):
        policy, old = state.policy, state.policy.current_factor
        if state.over or not state.calm or old >= 1.0 or not state.settled_since(recent):
            continue
        if any(_recovers_first(other, state, recent) for other in states):
            continue
        recovered = min(1.0, old / policy.tighten_factor)
        changes.append(_record(policy, recovered, "signals back under threshold", signals, now=now))
    return changes


ADJUSTMENTS_KEEP = timedelta(days=90)


def ratelimit_adjustments_prune(*, keep: timedelta = ADJUSTMENTS_KEEP) -> int:
    """Drop adaptive changes older than `keep` (the controller may record one per policy every few minutes,
    for ever); each policy's latest stays whatever its age, since it explains the factor in force. Admin edits
    of a limit older than `keep` go too."""
    horizon = timezone.now() - keep
    latest = RateLimitAdjustment.objects.filter(policy=OuterRef("policy")).order_by("-at", "-id").values("id")[:1]
    stale = RateLimitAdjustment.objects.filter(at__lt=horizon).exclude(pk=Subquery(latest))
    # The overview reads only the last hour's admin edits of a limit: none explains what is in force now.
    return stale.delete()[0] + RateLimitLimitChange.objects.filter(at__lt=horizon).delete()[0]


# Past the longest period a policy may have, with an hour's room for clocks that disagree (the database limiter
# keeps PostgreSQL's time, this prune the worker's).
HITS_KEEP_SECONDS = MAX_PERIOD_SECONDS + 3600


def ratelimit_hits_prune() -> int:
    """Drop the database limiter's hits no window can count any more. A key's own expired hits go at its next
    hit; a key never hit again (a client gone, a token revoked, a scope renamed) would keep its last window's
    rows for ever."""
    horizon_ms = int((time.time() - HITS_KEEP_SECONDS) * 1000)
    return RateLimitHit.objects.filter(at_ms__lt=horizon_ms).delete()[0]
