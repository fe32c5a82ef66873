"""The dashboard's rate-limit page reads the latest 20 adaptive changes of each policy, not its whole history."""

from __future__ import annotations

from unittest import mock

import pytest

from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

pytestmark = pytest.mark.django_db


def test_the_overview_reads_only_the_latest_twenty_changes_of_a_policy():
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    RateLimitAdjustment.objects.bulk_create(
        RateLimitAdjustment(policy=policy, direction="tighten", old_factor=1, new_factor=0.5, reason=f"step {n}")
        for n in range(300)
    )
    loaded = mock.Mock(wraps=RateLimitAdjustment.from_db)
    with mock.patch.object(RateLimitAdjustment, "from_db", loaded):
        rows = {row["scope"]: row for row in selectors.policy_overview()}
    assert [a["reason"] for a in rows["audit_logs"]["adjustments"]] == [f"step {n}" for n in range(299, 279, -1)]
    assert loaded.call_count == 20  # not the 300 rows of its history
