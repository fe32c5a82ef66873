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


def test_the_policys_admin_page_shows_its_latest_fifty_changes(admin_client):
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    RateLimitAdjustment.objects.bulk_create(
        RateLimitAdjustment(policy=policy, direction="tighten", old_factor=1, new_factor=0.5, reason=f"step {n}")
        for n in range(80)
    )
    response = admin_client.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/")
    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.instance.reason for form in inline.formset.forms] == [f"step {n}" for n in range(79, 29, -1)]
    # Saved as a browser sends the page back: the 50 rows shown, each by its id.
    form = {"scope": "audit_logs", "enabled": "on", "priority": 4, "requests": 40, "period_seconds": 60,
            "burst_per_second": "", "fail_open": "on", "adaptive": "on", "cpu_threshold_pct": 70,
            "p95_threshold_ms": "", "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
            "adjustments-TOTAL_FORMS": 50, "adjustments-INITIAL_FORMS": 50, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0}  # fmt: skip
    for i, shown in enumerate(inline.formset.forms):
        form[f"adjustments-{i}-id"] = shown.instance.pk
        form[f"adjustments-{i}-policy"] = policy.pk
    assert admin_client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", form).status_code == 302
    assert RateLimitPolicy.objects.get(pk=policy.pk).requests == 40
