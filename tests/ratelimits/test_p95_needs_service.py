"""An adaptive rule with a p95 threshold names the service whose p95 it watches: refused with a field error
otherwise (the controller reads no p95 without a service, so the rule silently never fired), never a 500."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.ratelimits.models import RateLimitPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _form(**fields) -> dict:
    return {
        "scope": "reports", "enabled": "on", "priority": 3, "requests": 100, "period_seconds": 60,
        "burst_per_second": "", "fail_open": "on", "adaptive": "on", "service": "", "cpu_threshold_pct": 70,
        "p95_threshold_ms": 500, "tighten_factor": 0.5, "min_factor": 0.1, "recover_below": 0.8,
        "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0, "adjustments-MIN_NUM_FORMS": 0,
        "adjustments-MAX_NUM_FORMS": 0, **fields,
    }  # fmt: skip


def _service() -> Service:
    return Service.objects.create(name="Triage model", slug="triage-model", base_url="http://triage.local")


def test_model_validation_refuses_a_p95_threshold_without_a_service():
    policy = RateLimitPolicy(scope="reports", requests=100, priority=3, adaptive=True, p95_threshold_ms=500)
    with pytest.raises(ValidationError) as refused:
        policy.full_clean()
    assert list(refused.value.message_dict) == ["service"]


def test_a_p95_threshold_with_its_service_or_on_a_policy_not_adaptive_is_accepted():
    RateLimitPolicy(scope="reports", requests=100, priority=3, adaptive=True, p95_threshold_ms=500,
                    service=_service()).full_clean()  # fmt: skip
    RateLimitPolicy(scope="other", requests=100, priority=3, adaptive=False, p95_threshold_ms=500).full_clean()


def test_the_admin_form_names_the_service_field(admin_client):
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/add/", _form())
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["service"]
    assert not RateLimitPolicy.objects.filter(scope="reports").exists()
    service = _service()
    response = admin_client.post("/admin/ratelimits/ratelimitpolicy/add/", _form(service=service.pk))
    assert response.status_code == 302
    assert RateLimitPolicy.objects.get(scope="reports").service == service


def test_an_operator_who_cannot_choose_the_service_gets_the_error_not_a_500(client, operator_user):
    """The service is read-only to those who do not see every service; the rule's error names it on the page."""
    policy = RateLimitPolicy.objects.create(scope="reports", requests=100, priority=3)
    client.force_login(operator_user)
    response = client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", _form())
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert any("choose the service" in error for error in errors)
    policy.refresh_from_db()
    assert (policy.adaptive, policy.p95_threshold_ms) == (False, None)
