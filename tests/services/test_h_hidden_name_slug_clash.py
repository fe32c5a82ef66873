"""`POST /api/v1/services/` with a hidden service's slug answered 400 "service with this slug already exists."
(and its name: "service with this name already exists."), confirming to an Operator outside the service's group
that it exists. A clash with a hidden service is now "not available" on the field, for the name, its case and
look-alike forms, the slug, on POST, PATCH and admin; a clash with a visible one still names the other service
(real PostgreSQL, DRF and Django's admin)."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

NAME_NOT_AVAILABLE = ["This name is not available: choose another."]
SLUG_NOT_AVAILABLE = ["This slug is not available: choose another."]


@pytest.fixture
def hidden() -> Service:
    fhir = service_create(name="FHIR R4 API", slug="fhir-api", kind="inference")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    return fhir


@pytest.fixture
def outsider(api, staff):
    api.force_login(staff("gop", OPERATORS))
    return api


def _errors(response) -> dict:
    assert response.status_code == 400, response.json()
    return response.json()["errors"]


@pytest.mark.parametrize(
    ("name", "slug", "expected"),
    [
        ("Other", "fhir-api", {"slug": SLUG_NOT_AVAILABLE}),  # was "service with this slug already exists."
        ("Other", "FHIR-API", {"slug": SLUG_NOT_AVAILABLE}),  # was "Another service has this slug (in some case)."
        ("FHIR R4 API", "other", {"name": NAME_NOT_AVAILABLE}),  # was "service with this name already exists."
        ("fhir r4 api", "other", {"name": NAME_NOT_AVAILABLE}),
        ("\uff26\uff28\uff29\uff32 R4  API", "other", {"name": NAME_NOT_AVAILABLE}),  # full-width letters, two spaces
    ],
)
def test_creating_with_a_hidden_services_name_or_slug_says_not_available(outsider, hidden, name, slug, expected):
    response = outsider.post("/api/v1/services/", {"name": name, "slug": slug, "kind": "inference"}, format="json")
    assert _errors(response) == expected
    assert Service.objects.count() == 1


def test_renaming_to_a_hidden_services_name_or_slug_says_not_available(outsider, hidden):
    service_create(name="Triage", slug="triage", kind="inference")
    for change, expected in (({"slug": "fhir-api"}, {"slug": SLUG_NOT_AVAILABLE}),
                             ({"name": "FHIR R4 API"}, {"name": NAME_NOT_AVAILABLE})):  # fmt: skip
        assert _errors(outsider.patch("/api/v1/services/triage/", change, format="json")) == expected
    assert Service.objects.filter(slug="triage", name="Triage").exists()


def test_a_clash_with_a_visible_service_still_names_it(outsider, hidden):
    service_create(name="Triage", slug="triage", kind="inference")
    response = outsider.post("/api/v1/services/", {"name": "Triage", "slug": "triage", "kind": "inference"},
                             format="json")  # fmt: skip
    assert _errors(response) == {
        "name": ["Another service has this name (in some case)."],
        "slug": ["Another service has this slug (in some case)."],
    }


def test_the_services_team_and_administrators_are_told_another_service_has_it(api, staff, hidden):
    for user in (staff("member", OPERATORS, "TeamFHIR"), staff("adm", ADMINISTRATORS)):
        api.force_login(user)
        response = api.post("/api/v1/services/", {"name": "Other", "slug": "fhir-api", "kind": "inference"},
                            format="json")  # fmt: skip
        assert _errors(response) == {"slug": ["Another service has this slug (in some case)."]}


def test_the_admin_form_says_not_available_too(client, staff, hidden):
    client.force_login(staff("gop", OPERATORS))
    response = client.post("/admin/services/service/add/", {
        "name": "FHIR R4 API", "slug": "fhir-api", "kind": "inference", "owner_team": "", "description": "",
        "route_prefix": "", "slo_p95_ms": 2000, "slo_p99_ms": 3000, "slo_avg_ms": 1000, "slo_min_rps": 50,
        "slo_error_rate_pct": 5,
    })  # fmt: skip
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["name"] == NAME_NOT_AVAILABLE and errors["slug"] == SLUG_NOT_AVAILABLE
    assert "Another service" not in response.content.decode()
