"""`/api/v1/services/`: CRUD for staff, refused to everyone else, validated field by field."""

import pytest

from apps.accounts.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


def test_staff_create_a_service_with_the_brief_slo_defaults(staff_api):
    response = staff_api.post("/api/v1/services/", {"name": "Triage model", "slug": "triage", "kind": "inference"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["slo_p95_ms"], body["slo_p99_ms"], body["slo_avg_ms"]) == (2000, 3000, 1000)
    assert (body["slo_min_rps"], body["slo_error_rate_pct"]) == (50.0, 5.0)


def test_staff_read_update_and_delete(staff_api, staff):
    service_create(name="Embeddings", slug="embeddings", kind="inference")
    assert staff_api.get("/api/v1/services/embeddings/").json()["name"] == "Embeddings"
    response = staff_api.patch("/api/v1/services/embeddings/", {"slo_p95_ms": 250}, format="json")
    assert response.status_code == 200
    assert Service.objects.get(slug="embeddings").slo_p95_ms == 250
    assert staff_api.delete("/api/v1/services/embeddings/").status_code == 403  # operators delete nothing
    staff_api.force_login(staff("adm", ADMINISTRATORS))
    assert staff_api.delete("/api/v1/services/embeddings/").status_code == 204
    assert not Service.objects.filter(slug="embeddings").exists()


def test_each_role_does_what_its_permissions_allow(api, staff):
    service_create(name="Embeddings", slug="embeddings", kind="inference")
    new = {"name": "Triage", "slug": "triage", "kind": "inference"}
    for username, roles, can_read, can_write in (("nobody", (), False, False), ("viewer", (VIEWERS,), True, False),
                                                 ("op", (OPERATORS,), True, True)):  # fmt: skip
        api.force_login(staff(username, *roles))
        assert (api.get("/api/v1/services/").status_code == 200) is can_read, username
        assert (api.post("/api/v1/services/", new, format="json").status_code == 201) is can_write, username
        changed = api.patch("/api/v1/services/embeddings/", {"slo_p95_ms": 250}, format="json")
        assert (changed.status_code == 200) is can_write, username
        assert api.delete("/api/v1/services/embeddings/").status_code == 403, username
        Service.objects.filter(slug="triage").delete()
    assert Service.objects.filter(slug="embeddings").exists()


def test_inconsistent_slo_is_a_field_level_400_and_changes_nothing(staff_api):
    service_create(name="API", slug="api", slo_p95_ms=200, slo_p99_ms=500, slo_avg_ms=100)
    response = staff_api.patch("/api/v1/services/api/", {"slo_p95_ms": 900}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "slo_p95_ms" in body["errors"]
    assert Service.objects.get(slug="api").slo_p95_ms == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "slug": "x", "kind": "mainframe"}, "kind"),
        ({"name": "X", "slug": "not a slug"}, "slug"),
        ({"name": "X", "slug": "x", "slo_error_rate_pct": 140}, "slo_error_rate_pct"),
        ({"name": "X", "slug": "x", "base_url": "nope"}, "base_url"),
        ({"slug": "x"}, "name"),
        # Routes are recorded as Django's URL patterns: a path as a browser shows it matches none of them.
        ({"name": "X", "slug": "x", "route_prefix": "/api/v1/patients/"}, "route_prefix"),
        ({"name": "X", "slug": "x", "route_prefix": "https://ehr.example.org/api/"}, "route_prefix"),
        ({"name": "X", "slug": "x", "route_prefix": "api/v1/ patients/"}, "route_prefix"),
    ],
)
def test_bad_input_names_the_field(staff_api, payload, field):
    response = staff_api.post("/api/v1/services/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_machine_clients_and_anonymous_callers_are_refused(api, issue_token):
    assert api.get("/api/v1/services/").status_code == 401
    token = issue_token("patient:read", "clinical:read", "inference", "audit:read")
    response = api.get("/api/v1/services/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403


def test_list_filters_by_kind_within_a_query_budget(staff_api, query_budget):
    for index in range(30):
        service_create(name=f"Service {index}", slug=f"s-{index}", kind="inference" if index % 2 else "api")
    # session, user, its own and its groups' permissions, its groups (which services it may see), count, page
    with query_budget(7):
        response = staff_api.get("/api/v1/services/?kind=inference")
    assert response.status_code == 200
    assert response.json()["count"] == 15


def test_admin_changelist_searches_and_filters_within_a_query_budget(client, admin_user, query_budget):
    for index in range(30):
        service_create(name=f"Service {index}", slug=f"s-{index}", owner_team="Radiology" if index < 5 else "ICU")
    client.force_login(admin_user)
    with query_budget(12):
        response = client.get("/admin/services/service/?q=Radiology&kind__exact=api")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5


def test_admin_saves_through_the_service_layer_and_validates(client, admin_user):
    client.force_login(admin_user)
    data = {
        "name": "Pharmacy API",
        "slug": "pharmacy",
        "kind": "api",
        "base_url": "",
        "owner_team": "",
        "description": "",
        "is_active": "on",
        "slo_p95_ms": 4000,
        "slo_p99_ms": 3000,
        "slo_avg_ms": 1000,
        "slo_min_rps": 50,
        "slo_error_rate_pct": 5,
    }
    response = client.post("/admin/services/service/add/", data)
    assert response.status_code == 200  # the form comes back with the error
    assert "cannot be above the p99 target" in response.content.decode()
    data["slo_p95_ms"] = 2000
    response = client.post("/admin/services/service/add/", data)
    assert response.status_code == 302
    assert Service.objects.get(slug="pharmacy").slo_p95_ms == 2000


def test_the_list_checks_its_parameters(staff_api):
    service_create(name="Embeddings", slug="embeddings", kind="inference")
    service_create(name="Patients", slug="patients", kind="api")
    listed = staff_api.get("/api/v1/services/", {"kind": "inference", "limit": 1})
    assert listed.status_code == 200 and [s["slug"] for s in listed.json()["results"]] == ["embeddings"]
    for bad, field in (({"bogus": 1}, "bogus"), ({"limit": -1}, "limit"), ({"limit": 10**9}, "limit"),
                       ({"offset": -5}, "offset"), ({"kind": "mainframe"}, "kind")):  # fmt: skip
        response = staff_api.get("/api/v1/services/", bad)
        assert response.status_code == 400 and field in response.json()["errors"], (bad, response.content)


def test_a_route_prefix_another_service_has_is_a_field_level_400(staff_api):
    """Two services with one prefix each owned all its routes: the same requests counted for both (twice the
    traffic in the totals, each one's SLO alerts and forecasts on the other's load)."""
    service_create(name="Patients", slug="patients", route_prefix="api/v1/patients/")
    new = {"name": "Patients v2", "slug": "patients-v2", "route_prefix": "api/v1/patients/"}
    response = staff_api.post("/api/v1/services/", new, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["route_prefix"] == [
        "Another service has this route prefix: a route is one service's."
    ]
    assert not Service.objects.filter(slug="patients-v2").exists()

    service_create(name="Vitals", slug="vitals", route_prefix="api/v1/vitals/")
    response = staff_api.patch("/api/v1/services/vitals/", {"route_prefix": "api/v1/patients/"}, format="json")
    assert response.status_code == 400 and "route_prefix" in response.json()["errors"]
    # Its own prefix saved again, and a narrower one under another's, are fine.
    assert (
        staff_api.patch("/api/v1/services/vitals/", {"route_prefix": "api/v1/vitals/"}, format="json").status_code
        == 200
    )
    narrower = {"route_prefix": "api/v1/patients/search/"}
    assert staff_api.patch("/api/v1/services/vitals/", narrower, format="json").status_code == 200


@pytest.mark.parametrize(
    "base_url",
    ["https://triage:s3cret@triage.internal/", "https://triage@triage.internal/", "ftp://triage.internal/models/"],
)
def test_a_base_url_with_credentials_or_not_http_is_a_field_level_400(staff_api, base_url):
    """Every staff role reads the registry: a password in the URL was stored and shown to Viewers (GET
    /api/v1/services/), and an ftp:// URL was taken for a service that benchmarks send HTTP to."""
    response = staff_api.post("/api/v1/services/", {"name": "Triage", "slug": "triage", "base_url": base_url})
    assert response.status_code == 400 and "base_url" in response.json()["errors"]
    assert not Service.objects.filter(slug="triage").exists()
    fine = staff_api.post("/api/v1/services/", {"name": "T", "slug": "t", "base_url": "https://triage.internal:8443/"})
    assert fine.status_code == 201


def test_a_base_url_that_cannot_be_parsed_is_a_field_error_from_the_service_layer():
    """Seeding and other callers of the service layer: the credentials check parsed a URL its validator had
    already refused, and an unclosed IPv6 host raised ValueError (a crash) instead of the field error."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        service_create(name="T", slug="t", base_url="http://[::1")
    assert "base_url" in refused.value.message_dict


@pytest.mark.django_db
def test_the_upgrade_removes_credentials_stored_in_a_base_url_before_the_check():
    """The check runs on save: a row stored before it kept https://triage:s3cret@... and showed it to every staff
    role, Viewers included (a reviewer's reproduction)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from apps.services.models import Service

    before, after = (
        [("services", "0004_service_route_prefix_unique")],
        [("services", "0005_base_url_credentials_removed")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    OldService = executor.loader.project_state(before).apps.get_model("services", "Service")
    OldService.objects.create(name="Triage", slug="triage", base_url="https://triage:s3cret@triage.internal:8443/v1",
                              description="Night shift.")  # fmt: skip
    OldService.objects.create(name="Plain", slug="plain", base_url="https://plain.internal/")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    triage = Service.objects.get(slug="triage")
    assert triage.base_url == "https://triage.internal:8443/v1" and "s3cret" not in triage.description
    assert triage.description.startswith("A user name and password were removed") and triage.description.endswith(
        "Night shift."
    )
    assert Service.objects.get(slug="plain").base_url == "https://plain.internal/"
