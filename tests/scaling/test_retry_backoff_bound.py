"""A failed apply is retried with a doubling wait, up to an hour. Doubled without an end, the wait of a policy
failed 43 times or more (SCALING_APPLY_MAX_ATTEMPTS set that high) overflowed timedelta: the checker raised
OverflowError at that policy every minute, and no other policy was reconciled any more."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.scaling import services
from apps.scaling.models import ScalingPolicy


def _failed(attempts: int, ago: timedelta, now: datetime) -> ScalingPolicy:
    return ScalingPolicy(
        apply_state=ScalingPolicy.ApplyState.FAILED, apply_attempts=attempts, state_changed_at=now - ago
    )


@pytest.mark.parametrize("attempts", [43, 60, 1000])
def test_a_policy_failed_many_times_is_retried_hourly_not_an_overflow(settings, attempts):
    settings.SCALING_APPLY_MAX_ATTEMPTS = 10_000
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert services._retry_due(_failed(attempts, timedelta(minutes=61), now), now) is True  # was OverflowError
    assert services._retry_due(_failed(attempts, timedelta(minutes=59), now), now) is False


def test_the_first_retries_keep_their_doubling_wait(settings):
    settings.SCALING_APPLY_MAX_ATTEMPTS = 6
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert services._retry_due(_failed(1, timedelta(seconds=30), now), now)
    assert not services._retry_due(_failed(3, timedelta(seconds=119), now), now)
    assert services._retry_due(_failed(3, timedelta(seconds=120), now), now)
    assert not services._retry_due(_failed(6, timedelta(days=1), now), now)  # given up
