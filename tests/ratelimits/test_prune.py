"""The adaptive controller's history is bounded: old changes go, each policy's latest stays."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.ratelimits import services, tasks
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

pytestmark = pytest.mark.django_db


def _adjustment(policy: RateLimitPolicy, days_ago: int) -> RateLimitAdjustment:
    row = RateLimitAdjustment.objects.create(
        policy=policy, direction="tighten", old_factor=1.0, new_factor=0.5, reason=f"{days_ago} days ago"
    )
    # `at` is auto_now_add: moved back the way the controller's old rows would be.
    RateLimitAdjustment.objects.filter(pk=row.pk).update(at=timezone.now() - timedelta(days=days_ago))
    return row


def test_old_adjustments_go_and_each_policys_latest_stays():
    busy, quiet = RateLimitPolicy.objects.order_by("priority")[:2]
    busy_old, busy_recent = _adjustment(busy, 200), _adjustment(busy, 5)
    quiet_older, quiet_latest = _adjustment(quiet, 300), _adjustment(quiet, 120)

    assert tasks.prune_adjustments() == 2

    kept = set(RateLimitAdjustment.objects.values_list("pk", flat=True))
    assert kept == {busy_recent.pk, quiet_latest.pk}  # quiet's latest is past 90 days and still explains it
    assert busy_old.pk not in kept and quiet_older.pk not in kept
    assert services.ratelimit_adjustments_prune() == 0


def test_the_prune_runs_daily_from_beat():
    schedule = PeriodicTask.objects.get(task="ratelimits.prune_adjustments")
    assert schedule.enabled and (schedule.interval.every, schedule.interval.period) == (1, "days")


def test_the_database_limiters_log_of_a_key_never_hit_again_goes():
    """Without Redis the log is a table, and a key's expired hits go only at its next hit: a client gone (a token
    revoked, a scope renamed) left its last window's rows for ever. None is needed past the longest period."""
    from apps.ratelimits.limiter import DatabaseSlidingWindow
    from apps.ratelimits.models import RateLimitHit

    window = DatabaseSlidingWindow()
    for key in ("gone:c1", "live:c2"):
        assert window.hit(key, limit=10, window_seconds=60).allowed
    two_days_ms = 2 * 86_400 * 1000
    RateLimitHit.objects.filter(key="gone:c1").update(at_ms=F("at_ms") - two_days_ms)

    assert tasks.prune_hits() == 1
    assert list(RateLimitHit.objects.values_list("key", flat=True)) == ["live:c2"]


def test_the_database_limiters_log_is_pruned_hourly_from_beat():
    schedule = PeriodicTask.objects.get(task="ratelimits.prune_hits")
    assert schedule.enabled and (schedule.interval.every, schedule.interval.period) == (1, "hours")
