"""Policies are edited in admin; the change page shows each tier's counters summed over processes."""

import pytest

from apps.caching.models import CachePolicy
from apps.caching.stack import default_stack

pytestmark = pytest.mark.django_db


def test_the_policy_page_shows_hit_rates_per_tier(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123")
    client.force_login(admin)
    stack = default_stack()
    for _ in range(4):
        stack.get_or_load("ai_inference", ["q"], lambda: {"answer": 1})
    stack.flush_stats()
    policy = CachePolicy.objects.get(namespace="ai_inference")
    listing = client.get("/admin/caching/cachepolicy/").content.decode()
    assert "75.0%" in listing  # 3 of 4 reads served from the cache
    page = client.get(f"/admin/caching/cachepolicy/{policy.pk}/change/").content.decode()
    assert "4 reads, hit rate 75.0%" in page and "<td>l1</td><td>3</td>" in page


def test_a_policy_holding_phi_cannot_be_stored_in_the_clear(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123")
    client.force_login(admin)
    policy = CachePolicy.objects.get(namespace="patient_data")
    form = {
        "namespace": "patient_data", "description": "", "enabled": "on", "contains_phi": "on", "l1_enabled": "on",
        "l2_enabled": "on", "l3_enabled": "on", "l1_max_entries": "100", "ttl_seconds": "60",
        "stale_while_revalidate_seconds": "0",
    }  # fmt: skip
    response = client.post(f"/admin/caching/cachepolicy/{policy.pk}/change/", form)
    assert response.status_code == 200 and "must be encrypted" in response.content.decode()
    response = client.post(f"/admin/caching/cachepolicy/{policy.pk}/change/", {**form, "encrypt": "on"})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.ttl_seconds == 60
