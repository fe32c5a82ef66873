"""A cache policy saved in admin for a namespace no code reads (a typo: `patient_dta`) governed nothing without a
word; the admin now says so on save, naming the namespace and the known ones. The policy is still saved (a
namespace of the product's own code is allowed), and a known namespace saves without the warning."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages

from apps.caching.models import CachePolicy
from apps.caching.services import cache_policy_ensure
from tests.admin_pages import page_data

pytestmark = pytest.mark.django_db
ADD = "/admin/caching/cachepolicy/add/"


def _warnings(response) -> list[str]:
    return [m.message for m in get_messages(response.wsgi_request) if m.level == messages.WARNING]


def test_a_policy_of_a_namespace_no_code_reads_is_saved_with_a_warning(admin_client):
    data = {**page_data(admin_client.get(ADD).context), "namespace": "patient_dta"}
    response = admin_client.post(ADD, data)
    assert response.status_code == 302
    assert CachePolicy.objects.filter(namespace="patient_dta").exists()
    [warning] = _warnings(response)
    assert "“patient_dta”" in warning
    assert "patient_data" in warning
    assert "vital_signs" in warning


def test_a_known_namespace_saves_without_a_warning(admin_client):
    policy = cache_policy_ensure(namespace="patient_data")
    url = f"/admin/caching/cachepolicy/{policy.pk}/change/"
    response = admin_client.post(url, {**page_data(admin_client.get(url).context), "ttl_seconds": 600})
    assert response.status_code == 302
    assert _warnings(response) == []
