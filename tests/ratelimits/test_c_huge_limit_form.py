"""A limit of 309 digits on the policy's change form is the field's error, not a 500: full_clean refused it, but
it stayed on the instance, and the page's re-render (its title, str(policy)) multiplied it by the factor into
a float, which overflowed (review d, finding 2). The list's editable column answers it as the row's error."""

from __future__ import annotations

import pytest

from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db
HUGE = "9" * 309  # past a float's range (about 1.8e308)


def _form(policy: RateLimitPolicy, **fields) -> dict:
    return {"scope": policy.scope, "description": policy.description, "enabled": "on", "priority": policy.priority,
            "requests": policy.requests, "period_seconds": policy.period_seconds, "burst_per_second": "",
            "fail_open": "on", "cpu_threshold_pct": 70, "p95_threshold_ms": "", "tighten_factor": 0.5,
            "min_factor": 0.1, "recover_below": 0.8, "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0,
            "adjustments-MIN_NUM_FORMS": 0, "adjustments-MAX_NUM_FORMS": 0, **fields}  # fmt: skip


def test_a_309_digit_limit_on_the_change_form_is_a_field_error(admin_client):
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    url = f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/"
    response = admin_client.post(url, _form(policy, requests=HUGE))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["requests"]
    assert "At most 10000 per period" in errors["requests"][0]  # the model's own message
    assert RateLimitPolicy.objects.get(pk=policy.pk).requests == policy.requests


def test_a_309_digit_limit_in_the_list_is_the_rows_error(admin_client):
    rows = list(RateLimitPolicy.objects.order_by("priority", "scope"))
    form = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}  # fmt: skip
    for i, policy in enumerate(rows):
        requests = HUGE if policy.scope == "audit_logs" else policy.requests
        form |= {f"form-{i}-id": policy.pk, f"form-{i}-requests": requests}
        if policy.enabled:
            form[f"form-{i}-enabled"] = "on"
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/", form)
    assert response.status_code == 200
    row = next(form for form in response.context["cl"].formset if form.instance.scope == "audit_logs")
    assert "At most 10000 per period" in row.errors["requests"][0]


def test_an_out_of_range_limit_in_memory_still_prints():
    """What an unsaved instance holds is not what the column can: str() and the limit in force never raise."""
    policy = RateLimitPolicy(scope="reports", requests=int(HUGE), period_seconds=60, current_factor=0.5)
    assert policy.requests_in_force() == 2_147_483_647  # not tightened: no signal read, so the factor lapsed
    assert str(policy) == "reports: 2147483647/60s"
