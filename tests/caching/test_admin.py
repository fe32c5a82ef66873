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


def test_a_namespace_the_code_fills_with_phi_cannot_be_marked_phi_free(client, django_user_model, settings):
    """An Operator could untick "holds PHI" and "encrypt": patients' names then sat readable in Redis."""
    import redis

    from apps.caching.stack import CacheStack

    admin = django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123")
    client.force_login(admin)
    policy = CachePolicy.objects.get(namespace="patient_data")
    form = {
        "namespace": "patient_data", "description": "", "enabled": "on", "l1_enabled": "on", "l2_enabled": "on",
        "l3_enabled": "on", "l1_max_entries": "100", "ttl_seconds": "60", "stale_while_revalidate_seconds": "0",
    }  # fmt: skip
    response = client.post(f"/admin/caching/cachepolicy/{policy.pk}/change/", form)
    assert response.status_code == 200 and "it holds PHI" in response.content.decode()
    policy.refresh_from_db()
    assert policy.contains_phi and policy.encrypt

    # A row changed outside admin (SQL, a shell) still leaves the brief's namespaces encrypted at rest.
    CachePolicy.objects.filter(pk=policy.pk).update(contains_phi=False, encrypt=False)
    stack = CacheStack.from_settings()  # a process starting now reads the row as it is
    assert stack.policy("patient_data").encrypt
    stack.get_or_load("patient_data", ["mrn", "MRN-7731"], lambda: {"family_name": "Okonkwo"}, scope="patient:7")
    client_redis = redis.Redis.from_url(settings.REDIS_URL)
    values = [client_redis.get(key) or b"" for key in client_redis.keys("cpc:*:v:*")]
    assert values and not any(b"Okonkwo" in value for value in values)
