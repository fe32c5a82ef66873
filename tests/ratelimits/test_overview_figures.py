"""The Rate limits page's busiest client: a client exempt from the limits (a load test's token) is counted
apart, not read as 2895% of a limit nothing held it to; and a minute's requests are read against the limit in
force in that minute, not against a tightening that came after them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.scopes import BENCHMARK
from apps.accounts.services import api_client_create
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

pytestmark = pytest.mark.django_db


def _route(scope: str) -> str:
    return next(route for route, named in selectors.route_scopes().items() if named == scope)


def _requests(scope: str, *, client: str, count: int, minutes_ago: int) -> None:
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=_route(scope), method="GET", status_class="2xx",
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


def _usage(admin_client, scope: str) -> dict:
    response = admin_client.get("/api/v1/ratelimits/")
    assert response.status_code == 200
    return {row["scope"]: row for row in response.json()["results"]}[scope]["usage"]


def test_a_client_exempt_from_the_limits_is_counted_apart_not_as_the_busiest(admin_client):
    bench = api_client_create(name="benchmark-run-7-1", scopes=["patient:read", BENCHMARK]).client
    api_client_create(name="ehr-gateway", scopes=["patient:read"])
    _requests("patient_data", client=bench.name, count=2895, minutes_ago=2)
    _requests("patient_data", client="ehr-gateway", count=40, minutes_ago=2)
    usage = _usage(admin_client, "patient_data")
    assert usage["requests"] == 2935 and usage["refused"] == 0
    assert usage["busiest_client_share"] == 0.4  # the old page: 28.95, the exempt token's 2895 of 100
    assert (usage["busiest_client"], usage["busiest_client_per_minute"]) == ("ehr-gateway", 40)
    assert usage["busiest_client_limit_per_minute"] == 100
    assert usage["exempt_clients"] == ["benchmark-run-7-1"] and usage["exempt_requests"] == 2895


def test_a_minutes_requests_are_read_against_the_limit_in_force_then(admin_client):
    """audit_logs: 30/min, 20 requests 30 minutes ago, tightened to 15/min 10 minutes ago."""
    _requests("audit_logs", client="compliance-export", count=20, minutes_ago=30)
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    RateLimitPolicy.objects.filter(pk=policy.pk).update(current_factor=0.5, signal_read_at=timezone.now())
    change = RateLimitAdjustment.objects.create(policy=policy, direction="tighten", old_factor=1.0, new_factor=0.5,
                                                reason="CPU 100% > 70%")  # fmt: skip
    RateLimitAdjustment.objects.filter(pk=change.pk).update(at=timezone.now() - timedelta(minutes=10))
    usage = _usage(admin_client, "audit_logs")
    assert usage["busiest_client_share"] == pytest.approx(0.6667)  # the old page: 1.3333, 20 against 15
    assert usage["busiest_client_per_minute"] == 20 and usage["busiest_client_limit_per_minute"] == 30
    # After the tightening, the same minute reads against 15.
    _requests("audit_logs", client="compliance-export", count=12, minutes_ago=5)
    usage = _usage(admin_client, "audit_logs")
    assert (usage["busiest_client_per_minute"], usage["busiest_client_limit_per_minute"]) == (12, 15)
    assert usage["busiest_client_share"] == 0.8


def test_a_tightening_that_lapsed_unrecorded_reads_as_lifted_from_when_it_lapsed(admin_client):
    """The controller stopped (no signal read for 15 minutes): the limiter went back to 30/min, unrecorded."""
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    read = timezone.now() - timedelta(minutes=40)
    RateLimitPolicy.objects.filter(pk=policy.pk).update(current_factor=0.5, signal_read_at=read)
    change = RateLimitAdjustment.objects.create(policy=policy, direction="tighten", old_factor=1.0, new_factor=0.5,
                                                reason="CPU 100% > 70%")  # fmt: skip
    RateLimitAdjustment.objects.filter(pk=change.pk).update(at=read)
    _requests("audit_logs", client="compliance-export", count=12, minutes_ago=35)  # tightened: 15/min
    _requests("audit_logs", client="compliance-export", count=18, minutes_ago=5)  # lapsed: 30/min
    usage = _usage(admin_client, "audit_logs")
    assert usage["busiest_client_share"] == 0.8  # 12 of 15 while tightened; 18 of 30 once lapsed
    assert (usage["busiest_client_per_minute"], usage["busiest_client_limit_per_minute"]) == (12, 15)


def test_the_overview_reads_one_row_a_minute_of_a_policys_changes_however_many_it_recorded():
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    RateLimitAdjustment.objects.bulk_create(
        RateLimitAdjustment(policy=policy, direction="tighten", old_factor=1, new_factor=0.5, reason=f"step {n}")
        for n in range(300)
    )
    (minute,) = selectors.factor_changes_by_minute(since=timezone.now() - timedelta(hours=1))[policy.pk]
    assert (minute.first_old, minute.top_new, minute.last_new) == (1, 0.5, 0.5)
