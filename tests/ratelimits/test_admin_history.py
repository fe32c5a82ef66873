"""What admin must not delete in rate limits: the adaptive changes (the record of what the controller did to each
limit) and the policy of a scope the API's views throttle by (its limit would vanish)."""

import pytest

from apps.ratelimits.models import RateLimitAdjustment, RateLimitPolicy

pytestmark = pytest.mark.django_db

URL = "/admin/ratelimits/ratelimitadjustment/"


def test_adjustments_cannot_be_deleted_in_admin(admin_client):
    policy = RateLimitPolicy.objects.first()
    change = RateLimitAdjustment.objects.create(
        policy=policy, direction="tighten", old_factor=1, new_factor=0.5, reason="CPU 93% over 70%"
    )
    listing = admin_client.get(URL)
    assert listing.status_code == 200
    form = listing.context["action_form"]  # None: no action left to offer
    assert form is None or "delete_selected" not in {name for name, _ in form.fields["action"].choices}
    assert admin_client.get(f"{URL}{change.pk}/delete/").status_code == 403
    admin_client.post(URL, {"action": "delete_selected", "_selected_action": [change.pk], "post": "yes"})
    assert RateLimitAdjustment.objects.filter(pk=change.pk).exists()
    assert admin_client.get(f"{URL}{change.pk}/change/").status_code == 200  # still read


def test_a_policy_the_api_throttles_by_cannot_be_deleted(admin_client):
    """Deleted, the limiter found no policy for `patient_data` and let every request through."""
    policy = RateLimitPolicy.objects.get(scope="patient_data")
    url = "/admin/ratelimits/ratelimitpolicy/"
    assert admin_client.get(f"{url}{policy.pk}/delete/").status_code == 403
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [policy.pk], "post": "yes"})
    assert RateLimitPolicy.objects.filter(pk=policy.pk).exists()
    spare = RateLimitPolicy.objects.create(scope="no-view-uses-this", requests=10)
    assert admin_client.post(f"{url}{spare.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not RateLimitPolicy.objects.filter(pk=spare.pk).exists()


def test_a_policy_the_api_throttles_by_cannot_be_renamed(admin_client):
    policy = RateLimitPolicy.objects.get(scope="patient_data")
    page = admin_client.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/")
    assert "scope" not in page.context["adminform"].form.fields
