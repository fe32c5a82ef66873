"""A route prefix was taken if it was a URL pattern's shape only: "\u0430pi/v1/patients/" (a Cyrillic a) read as
clinical-api's prefix and matched no route; "a" claimed every unowned route starting with "a" (admin/...);
"admin/" and "api/v1/" claimed the control plane's own requests as a service's traffic. Refused on the field,
in the API and in admin; seed_demo's prefixes and hospital services' own stay accepted."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS
from apps.core.management.commands.seed_demo import DEMO_SERVICES
from apps.services.models import Service
from apps.services.services import service_create, service_update

pytestmark = pytest.mark.django_db

REFUSED = {
    "\u0430pi/v1/patients/": "ASCII characters only",  # a Cyrillic a, U+0430
    "api/v1/pat\u0456ents/": "ASCII characters only",  # a Ukrainian i, U+0456
    "a": "End it with '/'",
    "api/v1/pat": "End it with '/'",
    "api/triage": "End it with '/'",
    "admin/": "control plane's own routes (admin/",
    "admin/services/": "control plane's own routes",
    "dashboard/": "control plane's own routes (dashboard/",
    "dashboard/sub/": "control plane's own routes (dashboard/",
    "static/": "control plane's own routes (static/",
    "healthz": "control plane's own routes (healthz)",
    "readyz": "control plane's own routes (readyz)",
    "metrics": "control plane's own routes (metrics)",
    "api/v1/metrics/": "control plane's own routes (api/v1/metrics/",
    "api/v1/services/": "control plane's own routes",
    "api/v1/inference/": "control plane's own routes (api/v1/inference/deployments/)",
    "api/": "control plane's own routes",
    "api/v1/": "control plane's own routes",
}
ACCEPTED = [
    "api/v1/patients/",
    "api/v1/patients/<id:patient_id>/vitals/",
    "fhir/",
    "fhir",
    "api/v1/inference/<slug:name>/generate",
    "api/triage/",
    "api/v1/triage/",
    "card/",
]


@pytest.fixture
def administrator_api(api, django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=ADMINISTRATORS))
    api.force_login(user)
    return api


@pytest.mark.parametrize("prefix", list(REFUSED))
def test_the_api_refuses_it_on_the_field(administrator_api, prefix):
    body = {"name": "Look-alike", "slug": "look-alike", "route_prefix": prefix}
    response = administrator_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400
    [message] = response.json()["errors"]["route_prefix"]
    assert REFUSED[prefix] in message
    assert not Service.objects.filter(slug="look-alike").exists()


@pytest.mark.parametrize("prefix", ["\u0430pi/v1/patients/", "a", "admin/"])
def test_the_api_refuses_it_on_an_edit(administrator_api, prefix):
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/")
    response = administrator_api.patch("/api/v1/services/triage/", {"route_prefix": prefix}, format="json")
    assert response.status_code == 400 and REFUSED[prefix] in response.json()["errors"]["route_prefix"][0]
    assert Service.objects.get(slug="triage").route_prefix == "api/v1/triage/"


def _admin_form(prefix: str) -> dict:
    return {
        "name": "Look-alike", "slug": "look-alike", "kind": "api", "base_url": "", "owner_team": "",
        "description": "", "is_active": "on", "route_prefix": prefix, "slo_p95_ms": 2000, "slo_p99_ms": 3000,
        "slo_avg_ms": 1000, "slo_min_rps": 50, "slo_error_rate_pct": 5,
    }  # fmt: skip


@pytest.mark.parametrize("prefix", ["\u0430pi/v1/patients/", "a", "admin/", "api/v1/metrics/"])
def test_admin_shows_it_as_the_fields_error(admin_client, prefix):
    response = admin_client.post("/admin/services/service/add/", _admin_form(prefix))
    assert response.status_code == 200
    assert REFUSED[prefix] in " ".join(response.context["adminform"].form.errors["route_prefix"])
    assert not Service.objects.filter(slug="look-alike").exists()


@pytest.mark.parametrize("prefix", ACCEPTED)
def test_a_hospital_services_routes_are_accepted(administrator_api, admin_client, prefix):
    body = {"name": "Ward", "slug": "ward", "route_prefix": prefix}
    assert administrator_api.post("/api/v1/services/", body, format="json").status_code == 201
    Service.objects.filter(slug="ward").delete()
    assert admin_client.post("/admin/services/service/add/", _admin_form(prefix)).status_code == 302
    assert Service.objects.get(slug="look-alike").route_prefix == prefix


def test_seed_demos_prefixes_are_accepted():
    prefixes = [spec["route_prefix"] for spec in DEMO_SERVICES if spec.get("route_prefix")]
    assert len(prefixes) == 4
    for number, prefix in enumerate(prefixes):
        service_create(name=f"S{number}", slug=f"s{number}", route_prefix=prefix)


def test_a_prefix_stored_before_the_rules_is_kept_and_its_other_fields_stay_editable(administrator_api):
    """No data migration: clinical-api on api/v1/ (an admin's choice) keeps it; a base URL edit (seed_demo
    after `make run PORT=...`) still saves; a change of the prefix meets the rules."""
    Service.objects.create(name="Clinical", slug="clinical", route_prefix="api/v1/")
    service = Service.objects.get(slug="clinical")
    service_update(service=service, base_url="http://127.0.0.1:8001")
    body = {"name": "Clinical", "slug": "clinical", "route_prefix": "api/v1/", "owner_team": "Ward IT"}
    assert administrator_api.put("/api/v1/services/clinical/", body, format="json").status_code == 200
    assert Service.objects.get(slug="clinical").route_prefix == "api/v1/"
    refused = administrator_api.patch("/api/v1/services/clinical/", {"route_prefix": "api/"}, format="json")
    assert refused.status_code == 400 and "control plane's own routes" in refused.json()["errors"]["route_prefix"][0]
    service_update(service=service, route_prefix="api/v1/patients/")
    assert Service.objects.get(slug="clinical").route_prefix == "api/v1/patients/"
