"""A rate-limit policy saved in admin for a scope no view throttles by (a typo: `patient_dat`) limited nothing
without a word; the admin now says so on save, naming the scope and the known ones. The policy is still saved
(a scope of one's own, `reports`, is allowed), and a known scope saves without the warning."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages

from apps.ratelimits.models import RateLimitPolicy
from tests.admin_pages import page_data

pytestmark = pytest.mark.django_db
ADD = "/admin/ratelimits/ratelimitpolicy/add/"


def _warnings(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request) if m.level == messages.WARNING]


@pytest.mark.parametrize("scope", ["patient_dat", "reports"])
def test_a_policy_of_a_scope_no_view_throttles_by_is_saved_with_a_warning(admin_client, scope):
    data = {**page_data(admin_client.get(ADD).context), "scope": scope, "requests": 100}
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert RateLimitPolicy.objects.filter(scope=scope).exists()
    [warning] = _warnings(response)
    assert f"“{scope}”" in warning
    for known in ("patient_data", "clinical_data", "ai_inference", "audit_logs"):
        assert known in warning


def test_a_known_scope_saves_without_a_warning(admin_client):
    policy = RateLimitPolicy.objects.get(scope="patient_data")  # seeded by the migrations
    url = f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/"
    response = admin_client.post(url, {**page_data(admin_client.get(url).context), "requests": 90})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert _warnings(response) == []
