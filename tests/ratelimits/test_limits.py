"""Rate limits on the real Redis: exact under concurrency, headers, 429s, fail open/closed, adaptive steps."""

from __future__ import annotations

import math
import threading

import pytest
import redis
from django.conf import settings
from django.db.models import F

from apps.ratelimits import services
from apps.ratelimits.limiter import DatabaseSlidingWindow, RedisSlidingWindow
from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy
from apps.ratelimits.throttling import limiter
from apps.services.models import Service
from tests.helpers import closed_port

pytestmark = pytest.mark.django_db


def test_sixty_four_concurrent_clients_get_exactly_the_limit():
    window = RedisSlidingWindow(redis.Redis.from_url(settings.REDIS_URL))
    allowed = []
    start = threading.Barrier(64)

    def client():
        start.wait()
        for _ in range(4):
            allowed.append(window.hit("exact:shared-token", limit=100, window_seconds=60).allowed)

    threads = [threading.Thread(target=client) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 256
    assert sum(allowed) == 100


def test_the_burst_cap_refuses_a_spike_inside_the_window():
    window = RedisSlidingWindow(redis.Redis.from_url(settings.REDIS_URL))
    decisions = [window.hit("burst:t", limit=100, window_seconds=60, burst=5) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert 0 < decisions[-1].retry_after_seconds <= 1
    # The headers describe the burst, the quota nearest to exhaustion: none left, back when Retry-After says.
    assert [(d.limit, d.remaining) for d in decisions] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)] + [(5, 0)] * 3
    assert decisions[-1].reset_seconds == decisions[-1].retry_after_seconds


def test_the_database_limiter_keeps_the_same_rule():
    window = DatabaseSlidingWindow()
    decisions = [window.hit("db:t", limit=3, window_seconds=60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[3].retry_after_seconds > 59


def test_responses_carry_the_headers_and_the_limit_answers_429(api, issue_token):
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=3)
    token = issue_token("audit:read")
    responses = [api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r["RateLimit-Limit"] == "3" for r in responses)
    assert 0 < int(responses[-1]["RateLimit-Reset"]) <= 60
    assert 0 < int(responses[-1]["Retry-After"]) <= 60
    body = responses[-1].json()
    assert body["code"] == "throttled" and body["retry_after_seconds"] > 0
    other = issue_token("audit:read")  # the limit is per client token
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


def test_a_policy_edit_takes_effect(api, issue_token):
    token = issue_token("audit:read")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")["RateLimit-Limit"] == "30"
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    policy.requests = 7
    policy.save()
    from apps.ratelimits.selectors import policy_cache

    policy_cache._bump()  # what the on-commit hook does once the edit commits
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")["RateLimit-Limit"] == "7"


@pytest.fixture
def redis_unreachable():
    """The limiter pointed at a port nothing listens on: a real connection failure, not a mock."""
    saved = limiter._backend
    limiter._backend = RedisSlidingWindow(redis.Redis(port=closed_port(), socket_connect_timeout=0.2))
    limiter.breaker.success()
    yield
    limiter._backend = saved
    limiter.breaker.success()


def test_redis_down_fails_open_or_closed_as_the_policy_says(api, issue_token, redis_unreachable):
    token = issue_token("audit:read")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200  # fail open
    assert limiter.breaker.state == "open"
    RateLimitPolicy.objects.filter(scope="audit_logs").update(fail_open=False)
    from apps.ratelimits.selectors import policy_cache

    policy_cache._bump()
    response = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json()["code"] == "rate_limiter_unavailable"
    # Not at once, and no later than the breaker's next probe (what is left of its back-off: a slow machine may
    # take over a second between the two requests).
    assert 1 <= int(response["Retry-After"]) <= math.ceil(limiter.breaker.open_seconds)


def test_adaptive_policies_tighten_under_load_and_recover_with_hysteresis():
    # Steps and hysteresis under test, not the seeded floors (tests/ratelimits/test_seeded_floors.py).
    RateLimitPolicy.objects.filter(scope__in=["audit_logs", "ai_inference"]).update(min_factor=0.1)
    audit = RateLimitPolicy.objects.get(scope="audit_logs")
    inference = RateLimitPolicy.objects.get(scope="ai_inference")
    patient = RateLimitPolicy.objects.get(scope="patient_data")
    tighten = services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={}))
    assert {c.policy.scope for c in tighten} == {"audit_logs"}  # the least important first; priority 1 never
    for policy in (audit, inference, patient):
        policy.refresh_from_db()
    assert (audit.effective_requests, inference.effective_requests, patient.effective_requests) == (15, 50, 100)

    def a_window_later():  # a policy steps at most once per signal window
        RateLimitPolicy.objects.update(last_step_at=F("last_step_at") - services.STEP_DWELL)

    assert services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={})) == []
    a_window_later()
    services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=95.0, p95_ms_by_service={}))
    audit.refresh_from_db()
    assert audit.effective_requests == 7

    a_window_later()
    assert services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=65.0, p95_ms_by_service={})) == []  # band
    services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=30.0, p95_ms_by_service={}))
    a_window_later()
    services.ratelimits_adapt(signals=services.LoadSignals(cpu_pct=30.0, p95_ms_by_service={}))
    audit.refresh_from_db()
    assert audit.current_factor == 1.0
    history = list(RateLimitAdjustment.objects.filter(policy=audit).order_by("at", "id"))
    assert [a.direction for a in history] == ["tighten", "tighten", "recover", "recover"]
    assert history[0].reason.startswith("CPU 95%")
    assert not RateLimitAdjustment.objects.exclude(policy=audit).exists()


def test_a_services_p95_over_its_slo_tightens_its_policy():
    service = Service.objects.create(name="Triage model", slug="triage", kind="inference", slo_p95_ms=800)
    RateLimitPolicy.objects.filter(scope="ai_inference").update(service=service)
    signals = services.LoadSignals(cpu_pct=10.0, p95_ms_by_service={service.pk: 1500})
    changes = services.ratelimits_adapt(signals=signals)
    assert [c.policy.scope for c in changes] == ["ai_inference"]
    assert "Triage model p95 1500 ms > 800 ms" in changes[0].reason


def test_a_limit_lowered_mid_window_refuses_at_once_with_consistent_headers(api, issue_token):
    from apps.ratelimits.selectors import policy_cache

    token = issue_token("audit:read")
    for _ in range(5):
        assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=2)
    policy_cache._bump()  # what the on-commit hook does once the edit commits
    refused = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 429
    assert (refused["RateLimit-Limit"], refused["RateLimit-Remaining"]) == ("2", "0")
    # Free again only when the 4th oldest of the 5 expires, about a minute on: both say so, in whole seconds.
    assert refused["RateLimit-Reset"] == refused["Retry-After"] and 55 <= int(refused["Retry-After"]) <= 60


def test_a_client_that_waits_retry_after_is_let_in(api, issue_token):
    import time

    RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=1, period_seconds=1)
    token = issue_token("audit:read")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    refused = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 429 and refused["Retry-After"] == refused["RateLimit-Reset"] == "1"
    time.sleep(int(refused["Retry-After"]))
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
