"""The policy form answers a bad value with its field's error, never a 500; a p95 threshold of 0 is refused
(it would silently mean "use the service's SLO", which is what leaving it empty says)."""

from __future__ import annotations

import pytest

from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db
ADD = "/admin/ratelimits/ratelimitpolicy/add/"


def _form(**fields) -> dict:
    return {"scope": "reports", "enabled": "on", "priority": 2, "requests": 100, "period_seconds": 60,
            "burst_per_second": "", "fail_open": "on", "cpu_threshold_pct": 70, "p95_threshold_ms": "",
            "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
            "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
            "adjustments-MAX_NUM_FORMS": 0, **fields}  # fmt: skip


def _field_errors(response) -> dict:
    assert response.status_code == 200
    return response.context["adminform"].form.errors


@pytest.mark.parametrize("requests", ["", "abc"])
def test_a_missing_or_unreadable_limit_with_a_burst_cap_is_a_field_error(admin_client, requests):
    errors = _field_errors(admin_client.post(ADD, _form(requests=requests, burst_per_second=5)))
    assert list(errors) == ["requests"]
    assert not RateLimitPolicy.objects.filter(scope="reports").exists()


def test_a_burst_cap_above_the_limit_is_still_refused(admin_client):
    errors = _field_errors(admin_client.post(ADD, _form(requests=10, burst_per_second=50)))
    assert list(errors) == ["burst_per_second"]


def test_a_p95_threshold_of_zero_is_refused_and_empty_means_the_slo(admin_client):
    errors = _field_errors(admin_client.post(ADD, _form(p95_threshold_ms=0)))
    assert list(errors) == ["p95_threshold_ms"]
    assert admin_client.post(ADD, _form()).status_code == 302
    assert RateLimitPolicy.objects.get(scope="reports").p95_threshold_ms is None


def _changelist(rows: list[RateLimitPolicy], **requests_by_scope: int) -> dict:
    form = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}  # fmt: skip
    for i, policy in enumerate(rows):
        form[f"form-{i}-id"] = policy.pk
        form[f"form-{i}-requests"] = requests_by_scope.get(policy.scope, policy.requests)
        if policy.enabled:
            form[f"form-{i}-enabled"] = "on"
    return form


def test_a_limit_lowered_under_the_burst_cap_in_the_list_is_the_rows_error_not_a_500(admin_client):
    """The list edits `requests` alone; the rule it breaks names `burst_per_second`, a field the row lacks."""
    RateLimitPolicy.objects.filter(scope="audit_logs").update(burst_per_second=10)
    rows = list(RateLimitPolicy.objects.order_by("priority", "scope"))
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/", _changelist(rows, audit_logs=5))
    assert response.status_code == 200
    row = next(form for form in response.context["cl"].formset if form.instance.scope == "audit_logs")
    assert row.non_field_errors() == ["Burst per second: A per-second burst cap above the whole limit never acts."]
    assert RateLimitPolicy.objects.get(scope="audit_logs").requests == 30
    saved = admin_client.post("/admin/ratelimits/ratelimitpolicy/", _changelist(rows, audit_logs=12))
    assert saved.status_code == 302 and RateLimitPolicy.objects.get(scope="audit_logs").requests == 12


def test_a_burst_cap_of_zero_is_refused_not_read_as_no_cap(admin_client):
    """The limiter reads 0 as "no burst cap", the opposite of what 0 per second says: empty is how to say none."""
    errors = _field_errors(admin_client.post(ADD, _form(burst_per_second=0)))
    assert list(errors) == ["burst_per_second"]
    assert not RateLimitPolicy.objects.filter(scope="reports").exists()


def test_a_row_set_wrong_outside_admin_does_not_block_saving_another_in_the_list(admin_client):
    """patient_data made adaptive by a script (admin refuses it for priority 1): the list still saves an edit of
    another row, and the untouched row is not reported."""
    RateLimitPolicy.objects.filter(scope="patient_data").update(adaptive=True)
    rows = list(RateLimitPolicy.objects.order_by("priority", "scope"))
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/", _changelist(rows, audit_logs=12))
    assert response.status_code == 302
    assert RateLimitPolicy.objects.get(scope="audit_logs").requests == 12


def test_a_limit_whose_exact_log_would_not_fit_in_redis_is_refused(admin_client):
    """The exact limiter keeps one Redis entry (~130 bytes) per admitted request for the whole period, per client:
    1,000,000 a day was ~130 MB of the cache's Redis for one busy client. A higher rate takes a shorter period."""
    errors = _field_errors(admin_client.post(ADD, _form(requests=1_000_000, period_seconds=86_400)))
    assert list(errors) == ["requests"]
    assert "10000" in str(errors["requests"])
    assert not RateLimitPolicy.objects.filter(scope="reports").exists()
    assert admin_client.post(ADD, _form(requests=10_000, period_seconds=60)).status_code == 302
