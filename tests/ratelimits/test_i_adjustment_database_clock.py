"""An adaptive step is stamped with the database's clock, as the policy's `last_step_at` and the admin edits' rows
are: the overview reads each step against the request rollups' minutes, which are on that clock (review c,
finding 3). A worker two hours behind stamped its step two hours early, and the Rate limits page read a client's
20 requests under 30/min, before the step, as 133% of the halved limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.ratelimits import services
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy
from apps.resources.selectors import database_now
from tests.ratelimits.test_overview_limit_edits_d import _requests, _usage

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("worker_skew", [timedelta(hours=-2), timedelta(hours=2)], ids=["behind", "ahead"])
def test_a_step_on_a_worker_whose_clock_is_off_is_stamped_on_the_databases_clock(admin_client, monkeypatch,
                                                                                  worker_skew):  # fmt: skip
    _requests("audit_logs", client="compliance-export", count=20, minutes_ago=10)  # under the 30 then in force
    real_now = timezone.now
    with monkeypatch.context() as worker:
        worker.setattr(timezone, "now", lambda: real_now() + worker_skew)
        changes = services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=99.0, p95_ms_by_service={}))
    assert ("audit_logs", 1.0, 0.5) in [(c.policy.scope, c.old_factor, c.new_factor) for c in changes]

    step = RateLimitAdjustment.objects.filter(policy__scope="audit_logs").latest("id")
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    assert abs(step.at - database_now()) < timedelta(minutes=1), (step.at, database_now())
    assert abs(step.at - policy.last_step_at) < timedelta(seconds=5)
    # The 20 requests ten minutes ago were under the 30/min in force then, not over the 15/min of the step.
    usage = _usage(admin_client, "audit_logs")
    assert (usage["busiest_client_limit_per_minute"], usage["busiest_client_share"]) == (
        30.0,
        pytest.approx(0.6667, abs=1e-3),
    )
