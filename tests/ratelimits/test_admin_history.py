"""The adaptive changes are the record of what the controller did to each limit: admin reads them, and neither
an Administrator's delete button nor the bulk "Delete selected" action removes them."""

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
