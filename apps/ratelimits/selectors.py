"""Reads of the rate-limit app: the policies (cached per process, refreshed within a second of an edit)."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.local_cache import VersionedLocalCache
from apps.ratelimits.models import RateLimitPolicy

policy_cache = VersionedLocalCache("ratelimit-policies", check_interval=1.0, ttl=300)


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    scope: str
    requests: int
    period_seconds: int
    burst_per_second: int | None
    fail_open: bool


def active_policies() -> dict[str, ActivePolicy]:
    def load() -> dict[str, ActivePolicy]:
        return {
            p.scope: ActivePolicy(p.scope, p.effective_requests, p.period_seconds, p.burst_per_second, p.fail_open)
            for p in RateLimitPolicy.objects.filter(enabled=True)
        }

    return policy_cache.get("all", load)


def active_policy(scope: str) -> ActivePolicy | None:
    return active_policies().get(scope)
