"""A policy of a namespace the code reads cannot be deleted in admin: the next read created it again with the
defaults (enabled, the brief's TTL, every tier), the admin's settings (disabled, a shorter TTL) lost without a
word. A policy no code names (created on an ad hoc first use) still can be."""

from __future__ import annotations

import pytest

from apps.caching.defaults import DEFAULT_POLICIES
from apps.caching.models import CachePolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


@pytest.mark.parametrize("namespace", sorted(DEFAULT_POLICIES))
def test_deleting_a_namespace_the_code_uses_is_refused(superuser_client, namespace):
    policy = CachePolicy.objects.get(namespace=namespace)
    url = f"/admin/caching/cachepolicy/{policy.pk}/delete/"
    assert superuser_client.get(url).status_code == 403
    assert superuser_client.post(url, {"post": "yes"}).status_code == 403
    assert CachePolicy.objects.filter(pk=policy.pk).exists()
    page = superuser_client.get(f"/admin/caching/cachepolicy/{policy.pk}/change/").content.decode()
    assert "/delete/" not in page  # no Delete link offered


def test_the_bulk_delete_action_refuses_them_too(superuser_client):
    policy = CachePolicy.objects.get(namespace="patient_data")
    response = superuser_client.post(
        "/admin/caching/cachepolicy/",
        {"action": "delete_selected", "_selected_action": [policy.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert CachePolicy.objects.filter(pk=policy.pk).exists()


def test_a_policy_no_code_names_can_still_be_deleted(superuser_client):
    policy = CachePolicy.objects.create(namespace="d-ad-hoc", ttl_seconds=60)
    response = superuser_client.post(f"/admin/caching/cachepolicy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not CachePolicy.objects.filter(pk=policy.pk).exists()
