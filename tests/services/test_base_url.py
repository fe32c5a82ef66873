"""A service's base URL: probes and benchmarks append their paths to it, so a port outside 1-65535, a query
string or a fragment is refused on the field (API: 400; admin: the form's field error), never stored."""

import pytest

from apps.services.models import Service

pytestmark = pytest.mark.django_db

BAD = [
    "https://triage.internal:0/",
    "https://triage.internal:99999/",
    "https://triage.internal/api?tenant=icu",
    "https://triage.internal/api?",
    "https://triage.internal/api#section",
]


@pytest.mark.parametrize("base_url", BAD)
def test_the_api_refuses_a_bad_port_a_query_or_a_fragment_on_the_field(staff_api, base_url):
    response = staff_api.post("/api/v1/services/", {"name": "Triage", "slug": "triage", "base_url": base_url})
    assert response.status_code == 400, response.content
    assert "base_url" in response.json()["errors"]
    assert not Service.objects.filter(slug="triage").exists()


def test_an_update_to_a_bad_base_url_is_refused_and_a_good_one_kept(staff_api):
    created = staff_api.post("/api/v1/services/", {"name": "T", "slug": "t", "base_url": "https://t.internal:8443/v1"})
    assert created.status_code == 201, created.content
    for base_url in BAD:
        response = staff_api.patch("/api/v1/services/t/", {"base_url": base_url}, format="json")
        assert response.status_code == 400 and "base_url" in response.json()["errors"], base_url
    assert Service.objects.get(slug="t").base_url == "https://t.internal:8443/v1"


@pytest.mark.parametrize("base_url", BAD)
def test_the_admin_form_refuses_them_on_the_field(client, admin_user, base_url):
    client.force_login(admin_user)
    data = {
        "name": "Pharmacy API",
        "slug": "pharmacy",
        "kind": "api",
        "base_url": base_url,
        "is_active": "on",
        "slo_p95_ms": 2000,
        "slo_p99_ms": 3000,
        "slo_avg_ms": 1000,
        "slo_min_rps": 50,
        "slo_error_rate_pct": 5,
    }
    response = client.post("/admin/services/service/add/", data)
    assert response.status_code == 200  # the form comes back
    assert "base_url" in response.context["adminform"].form.errors
    assert not Service.objects.filter(slug="pharmacy").exists()
