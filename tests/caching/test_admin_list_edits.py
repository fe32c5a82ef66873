"""The cache policies' list edits TTLs in place: a row's mistake is a message on that row, never a 500."""

import pytest

from apps.caching.models import CachePolicy

pytestmark = pytest.mark.django_db

URL = "/admin/caching/cachepolicy/"


def _list_post(client, ttl_of) -> object:
    policies = list(CachePolicy.objects.all())
    data = {"form-TOTAL_FORMS": len(policies), "form-INITIAL_FORMS": len(policies), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}  # fmt: skip
    for i, policy in enumerate(policies):
        data |= {f"form-{i}-id": policy.pk, f"form-{i}-ttl_seconds": ttl_of(policy)}
        if policy.enabled:
            data[f"form-{i}-enabled"] = "on"
    return client.post(URL, data)


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    client.raise_request_exception = False
    return client


def test_a_ttl_that_leaves_no_room_for_the_stale_window_is_a_row_error(root_client):
    """TTL 24 h with a 60 s stale window: the model names `stale_while_revalidate_seconds`, which the row lacks
    (Django raised ValueError: a 500)."""
    response = _list_post(root_client, lambda p: 86_400 if p.namespace == "ai_inference" else p.ttl_seconds)
    assert response.status_code == 200
    assert "Stale-while-revalidate (s): TTL plus the stale window must fit in 24 h." in response.content.decode()
    assert CachePolicy.objects.get(namespace="ai_inference").ttl_seconds != 86_400


def test_a_row_set_wrong_outside_admin_does_not_block_editing_the_others(root_client):
    CachePolicy.objects.filter(namespace="patient_data").update(contains_phi=False, encrypt=False)
    response = _list_post(root_client, lambda p: 120 if p.namespace == "ai_inference" else p.ttl_seconds)
    assert response.status_code == 302
    assert CachePolicy.objects.get(namespace="ai_inference").ttl_seconds == 120


def test_a_negative_ttl_is_refused_on_its_field(root_client):
    response = _list_post(root_client, lambda p: -5 if p.namespace == "ai_inference" else p.ttl_seconds)
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert CachePolicy.objects.get(namespace="ai_inference").ttl_seconds > 0


def test_a_policy_s_namespace_is_not_renamed_in_admin(root_client):
    """Renamed, "patient_data" governed nothing: the code seeded the name again with the defaults."""
    policy = CachePolicy.objects.get(namespace="patient_data")
    page = root_client.get(f"{URL}{policy.pk}/change/")
    assert "namespace" not in page.context["adminform"].form.fields
    assert "namespace" in root_client.get(f"{URL}add/").context["adminform"].form.fields
