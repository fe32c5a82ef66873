"""The Rate limits page reads each past minute's usage against the limit in force then: an admin edit of
`requests` (or `period_seconds`) is recorded, as the adaptive factor's changes are, and a minute before it is read
against the old limit. Before, only the factor had a history: a client refused 17 times under a limit of 3 read,
once the limit was set back to 30, as using 10% of it, and the wrong minute was ranked the busiest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors, services
from apps.ratelimits.models import RateLimitLimitChange, RateLimitPolicy

pytestmark = pytest.mark.django_db

CHANGE = "/admin/ratelimits/ratelimitpolicy/{}/change/"


def _route(scope: str) -> str:
    return next(route for route, named in selectors.route_scopes().items() if named == scope)


def _requests(scope: str, *, client: str, count: int, minutes_ago: int, status_class: str = "2xx") -> None:
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=_route(scope), method="GET", status_class=status_class,
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


def _usage(admin_client, scope: str) -> dict:
    response = admin_client.get("/api/v1/ratelimits/")
    assert response.status_code == 200
    return {row["scope"]: row for row in response.json()["results"]}[scope]["usage"]


def _form(policy: RateLimitPolicy, **fields) -> dict:
    """The policy's change form as admin posts it, with these fields changed."""
    form = {"scope": policy.scope, "description": policy.description, "priority": policy.priority,
            "requests": policy.requests, "period_seconds": policy.period_seconds,
            "burst_per_second": policy.burst_per_second or "", "service": policy.service_id or "",
            "cpu_threshold_pct": policy.cpu_threshold_pct, "p95_threshold_ms": policy.p95_threshold_ms or "",
            "tighten_factor": policy.tighten_factor, "min_factor": policy.min_factor,
            "recover_below": policy.recover_below,
            "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0}  # fmt: skip
    for flag in ("enabled", "fail_open", "adaptive"):
        if getattr(policy, flag):
            form[flag] = "on"
    form.update(fields)
    return form


def _edit(admin_client, scope: str, *, minutes_ago: int, **fields) -> RateLimitLimitChange:
    """An admin edit of the policy, recorded as made `minutes_ago` (set rather than waited for)."""
    policy = RateLimitPolicy.objects.get(scope=scope)
    response = admin_client.post(CHANGE.format(policy.pk), _form(policy, **fields))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    change = RateLimitLimitChange.objects.filter(policy=policy).latest("at", "id")
    RateLimitLimitChange.objects.filter(pk=change.pk).update(at=timezone.now() - timedelta(minutes=minutes_ago))
    return change


def test_a_minute_before_an_admin_edit_is_read_against_the_limit_then(admin_client):
    """audit_logs: 30/min set to 3/min 20 minutes ago, 20 attempts (3 admitted) 10 minutes ago, set back to 30
    5 minutes ago, then another client's 20 two minutes ago."""
    assert RateLimitPolicy.objects.get(scope="audit_logs").requests == 30
    lowered = _edit(admin_client, "audit_logs", minutes_ago=20, requests=3)
    assert (lowered.old_requests, lowered.new_requests) == (30, 3)
    _requests("audit_logs", client="compliance-export", count=3, minutes_ago=10)
    _requests("audit_logs", client="compliance-export", count=17, minutes_ago=10, status_class="429")
    raised = _edit(admin_client, "audit_logs", minutes_ago=5, requests=30)
    assert (raised.old_requests, raised.new_requests) == (3, 30)
    _requests("audit_logs", client="ehr-gateway", count=20, minutes_ago=2)

    usage = _usage(admin_client, "audit_logs")
    assert usage["busiest_client"] == "unrecognised client"  # a rollup label of no API client
    # Before: 30 (today's limit) and a share of 0.1; and either minute could be named the busiest.
    assert usage["busiest_client_limit_per_minute"] == 3
    assert (usage["busiest_client_per_minute"], usage["busiest_client_refused"]) == (3, 17)
    assert usage["busiest_client_share"] == 1.0
    assert (
        usage["busiest_client_minute"]
        == (timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)).isoformat()
    )


def test_the_minute_of_an_edit_reads_against_the_higher_of_the_two(admin_client):
    """A client's minute is never read against a limit lower than one it met in that minute."""
    _requests("audit_logs", client="compliance-export", count=12, minutes_ago=3)
    change = _edit(admin_client, "audit_logs", minutes_ago=0, requests=6)
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    RateLimitLimitChange.objects.filter(pk=change.pk).update(at=minute + timedelta(seconds=30))
    usage = _usage(admin_client, "audit_logs")
    assert usage["busiest_client_limit_per_minute"] == 30 and usage["busiest_client_share"] == 0.4


def test_a_longer_period_set_since_is_not_applied_to_the_minutes_before_it(admin_client):
    """30 per 60 s, then 30 per 120 s (15/min): the 20 a minute sent before read against 30, not 15."""
    _requests("audit_logs", client="compliance-export", count=20, minutes_ago=10)
    change = _edit(admin_client, "audit_logs", minutes_ago=5, period_seconds=120)
    assert (change.old_period_seconds, change.new_period_seconds) == (60, 120)
    usage = _usage(admin_client, "audit_logs")
    assert usage["busiest_client_limit_per_minute"] == 30 and usage["busiest_client_share"] == pytest.approx(0.6667)


def test_an_edit_that_leaves_the_limit_records_nothing(admin_client):
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    response = admin_client.post(CHANGE.format(policy.pk), _form(policy, description="edited"))
    assert response.status_code == 302
    assert RateLimitPolicy.objects.get(pk=policy.pk).description == "edited"
    assert not RateLimitLimitChange.objects.exists()


def test_a_limit_edited_in_the_list_is_recorded_too(admin_client):
    rows = list(RateLimitPolicy.objects.order_by("priority", "scope"))
    form = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}  # fmt: skip
    for i, policy in enumerate(rows):
        form[f"form-{i}-id"] = policy.pk
        form[f"form-{i}-requests"] = 12 if policy.scope == "audit_logs" else policy.requests
        if policy.enabled:
            form[f"form-{i}-enabled"] = "on"
    assert admin_client.post("/admin/ratelimits/ratelimitpolicy/", form).status_code == 302
    (change,) = RateLimitLimitChange.objects.all()
    assert (change.policy.scope, change.old_requests, change.new_requests) == ("audit_logs", 30, 12)


def test_the_prune_drops_old_limit_edits():
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    old = RateLimitLimitChange.objects.create(policy=policy, old_requests=30, new_requests=3, old_period_seconds=60,
                                              new_period_seconds=60)  # fmt: skip
    recent = RateLimitLimitChange.objects.create(policy=policy, old_requests=3, new_requests=30,
                                                 old_period_seconds=60, new_period_seconds=60)  # fmt: skip
    RateLimitLimitChange.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=91))
    assert services.ratelimit_adjustments_prune() == 1
    assert list(RateLimitLimitChange.objects.values_list("pk", flat=True)) == [recent.pk]
