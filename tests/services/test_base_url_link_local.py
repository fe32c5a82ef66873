"""A service's base URL at a link-local address (the cloud metadata service's 169.254.169.254, fe80::/10) is
refused on the field, in the API and in admin, and a stored one is unusable; loopback and private addresses
stay allowed."""

import pytest

from apps.services.models import Service

pytestmark = pytest.mark.django_db

LINK_LOCAL = [
    "http://169.254.169.254/",
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.0.1:8443/v1",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",
]
ALLOWED = ["http://127.0.0.1:8000", "http://localhost:9000/", "https://10.2.3.4/v1", "http://192.168.1.20",
           "http://[::1]:8000/", "https://triage.hospital.internal/"]  # fmt: skip


@pytest.mark.parametrize("base_url", LINK_LOCAL)
def test_the_api_refuses_a_link_local_base_url_on_the_field(staff_api, base_url):
    response = staff_api.post("/api/v1/services/", {"name": "T", "slug": "t", "base_url": base_url}, format="json")
    assert response.status_code == 400, response.content
    assert "link-local" in str(response.json()["errors"]["base_url"])
    assert not Service.objects.exists()


@pytest.mark.parametrize("base_url", LINK_LOCAL[:2])
def test_the_admin_form_refuses_it_on_the_field(client, admin_user, base_url):
    client.force_login(admin_user)
    data = {"name": "Pharmacy API", "slug": "pharmacy", "kind": "api", "base_url": base_url, "is_active": "on",
            "slo_p95_ms": 2000, "slo_p99_ms": 3000, "slo_avg_ms": 1000, "slo_min_rps": 50,
            "slo_error_rate_pct": 5}  # fmt: skip
    response = client.post("/admin/services/service/add/", data)
    assert response.status_code == 200
    assert "base_url" in response.context["adminform"].form.errors
    assert not Service.objects.exists()


def test_a_stored_link_local_base_url_is_unusable():
    service = Service.objects.create(name="Old", slug="old", base_url="http://169.254.169.254/")
    assert "link-local" in service.base_url_error


@pytest.mark.parametrize("base_url", ALLOWED)
def test_loopback_private_and_named_hosts_are_still_allowed(staff_api, base_url):
    response = staff_api.post("/api/v1/services/", {"name": "T", "slug": "t", "base_url": base_url}, format="json")
    assert response.status_code == 201, response.content
