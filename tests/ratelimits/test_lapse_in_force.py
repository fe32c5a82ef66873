"""A lapsed tightening is out of force at the moment it lapses, in the limiter of a process that loaded it while it
held (its policies are cached for 5 minutes, and nothing bumps their version at a lapse), and the limiter's
headers, admin and the overview agree on the limit then."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from apps.ratelimits import selectors
from apps.ratelimits.models import TIGHTENING_LAPSES_AFTER, RateLimitPolicy

pytestmark = pytest.mark.django_db

# The tightening lapses this long after the test first loads the policies; the test waits a second more.
LAPSES_IN = timedelta(seconds=2)


def _tightened_and_about_to_lapse(scope: str) -> None:
    """Halved, the controller's last reading TIGHTENING_LAPSES_AFTER ago but LAPSES_IN (by the database's clock,
    which stamps its readings). An update, as the controller's reading is: no version bump."""
    RateLimitPolicy.objects.filter(scope=scope).update(
        current_factor=0.5, signal_read_at=Now() - TIGHTENING_LAPSES_AFTER + LAPSES_IN
    )


def _after_the_lapse() -> None:
    time.sleep(LAPSES_IN.total_seconds() + 1)


def test_the_configured_limit_is_in_force_when_the_tightening_lapses_not_when_the_cache_expires():
    """The controller has stopped, so nothing bumps the policies' version; the process loaded the tightening 2 s
    before it lapsed and kept it for its 5-minute TTL: 25 of 50 up to 20 minutes after the last reading."""
    _tightened_and_about_to_lapse("ai_inference")
    assert selectors.active_policy("ai_inference").requests == 25
    _after_the_lapse()
    assert RateLimitPolicy.objects.get(scope="ai_inference").tightening_lapsed()
    assert selectors.active_policy("ai_inference").requests == 50


def test_a_reading_before_the_lapse_keeps_the_tightening_in_force(django_assert_num_queries):
    """At the moment it would lapse the policies are read again, not judged from what was loaded: the controller
    read a signal meanwhile (an update, no version bump), and the tightening holds."""
    _tightened_and_about_to_lapse("ai_inference")
    assert selectors.active_policy("ai_inference").requests == 25
    RateLimitPolicy.objects.filter(scope="ai_inference").update(signal_read_at=Now())
    _after_the_lapse()
    with django_assert_num_queries(1):
        assert selectors.active_policy("ai_inference").requests == 25
    with django_assert_num_queries(0):  # the next lapse is 15 minutes away: no read per request
        assert selectors.active_policy("ai_inference").requests == 25


def test_headers_admin_and_overview_show_the_configured_limit_after_the_lapse(api, issue_token, admin_client):
    token = issue_token("audit:read")
    _tightened_and_about_to_lapse("audit_logs")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")["RateLimit-Limit"] == "15"
    _after_the_lapse()
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")["RateLimit-Limit"] == "30"
    changelist = admin_client.get("/admin/ratelimits/ratelimitpolicy/")
    assert changelist.status_code == 200
    assert "30/60s" in changelist.content.decode()
    overview = admin_client.get("/api/v1/ratelimits/")
    assert overview.status_code == 200
    row = next(r for r in overview.json()["results"] if r["scope"] == "audit_logs")
    assert (row["requests"], row["current_factor"], row["effective_requests"]) == (30, 0.5, 30)


def test_on_a_host_whose_clock_runs_ahead_admin_and_overview_show_the_limit_the_limiter_enforces(
    api, issue_token, admin_client
):
    """The limiter judges a lapse by the database's clock; admin and the overview judged it by the host's, and one
    10 minutes ahead showed the configured limit 10 minutes before it was in force."""
    token = issue_token("audit:read")
    RateLimitPolicy.objects.filter(scope="audit_logs").update(
        current_factor=0.5, signal_read_at=Now() - TIGHTENING_LAPSES_AFTER + timedelta(minutes=5)
    )
    ahead = timezone.now() + timedelta(minutes=10)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")["RateLimit-Limit"] == "15"
        assert "15/60s" in admin_client.get("/admin/ratelimits/ratelimitpolicy/").content.decode()
        rows = admin_client.get("/api/v1/ratelimits/").json()["results"]
        assert next(r for r in rows if r["scope"] == "audit_logs")["effective_requests"] == 15


def test_on_a_host_whose_clock_runs_ahead_the_prometheus_gauge_shows_the_limit_the_limiter_enforces(client):
    """/metrics judged the lapse by the host's clock: 10 minutes ahead, it showed the configured 30 while the
    limiter enforced 15."""
    RateLimitPolicy.objects.filter(scope="audit_logs").update(
        current_factor=0.5, signal_read_at=Now() - TIGHTENING_LAPSES_AFTER + timedelta(minutes=5)
    )
    ahead = timezone.now() + timedelta(minutes=10)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'cp_rate_limit_requests{scope="audit_logs"} 15.0' in body
