"""A 429 of the per-second burst cap answers headers about the burst (0 left, reset = Retry-After), Redis and
database alike; the database limiter keeps time by PostgreSQL's clock, so processes with skewed clocks agree."""

from __future__ import annotations

import time
import uuid
from unittest import mock

import pytest
import redis
from django.conf import settings

from apps.ratelimits.limiter import DatabaseSlidingWindow, RedisSlidingWindow
from apps.ratelimits.models import RateLimitPolicy


def _backends():
    return [RedisSlidingWindow(redis.Redis.from_url(settings.REDIS_URL)), DatabaseSlidingWindow()]


@pytest.mark.django_db
@pytest.mark.parametrize("backend", [0, 1], ids=["redis", "database"])
def test_a_burst_refusal_says_none_left_and_resets_when_retry_after_says(backend):
    window = _backends()[backend]
    key = f"burst:{uuid.uuid4().hex}"
    decisions = [window.hit(key, limit=10, window_seconds=60, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [(d.limit, d.remaining) for d in decisions] == [(3, 2), (3, 1), (3, 0), (3, 0)]
    refused = decisions[-1]
    assert 0 < refused.retry_after_seconds <= 1 and refused.reset_seconds == refused.retry_after_seconds
    assert all(0 < d.reset_seconds <= 1 for d in decisions)


@pytest.mark.django_db
@pytest.mark.parametrize("backend", [0, 1], ids=["redis", "database"])
def test_the_window_is_reported_while_it_has_fewer_left_than_the_burst(backend):
    window = _backends()[backend]
    key = f"burst-window:{uuid.uuid4().hex}"
    decisions = [window.hit(key, limit=3, window_seconds=60, burst=5) for _ in range(4)]
    assert [(d.allowed, d.limit, d.remaining) for d in decisions] == [
        (True, 3, 2), (True, 3, 1), (True, 3, 0), (False, 3, 0)
    ]  # fmt: skip
    assert decisions[-1].reset_seconds == decisions[-1].retry_after_seconds > 59


@pytest.mark.django_db
def test_a_burst_429_over_http_has_consistent_headers(api, issue_token):
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=100, burst_per_second=2)
    api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")  # warm: the spike is quick
    token = issue_token("audit:read")
    responses = [api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    refused = responses[-1]
    assert refused["RateLimit-Remaining"] == "0" and refused["RateLimit-Limit"] == "2"
    assert refused["RateLimit-Reset"] == refused["Retry-After"] == "1"
    assert responses[1]["RateLimit-Remaining"] == "0"  # the next one inside the second is refused: it says so


@pytest.mark.django_db
def test_database_limiter_processes_with_skewed_clocks_agree():
    """Two processes, one of whose clocks runs two minutes ahead: the hit the first admitted still counts."""
    window = DatabaseSlidingWindow()
    key = f"skew:{uuid.uuid4().hex}"
    assert window.hit(key, limit=1, window_seconds=60).allowed
    ahead = time.time() + 120
    with mock.patch("apps.ratelimits.limiter.time.time", return_value=ahead):
        refused = window.hit(key, limit=1, window_seconds=60)
    assert not refused.allowed and 58 < refused.retry_after_seconds <= 60
