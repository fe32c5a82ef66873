"""The adaptive controller's history is bounded: old changes go, each policy's latest stays."""

from datetime import timedelta

import pytest
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
