"""A service's name and slug are unique in any case, its slug lower case, and its identifiers, names and base URL
hold no character nobody sees (controls, zero-width and bidirectional characters, line separators...): "Triage"
and "triage" were two services, two API URLs and one name to a reader, and "Tri\\u200bage" another again."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

FORM = {"kind": "api", "is_active": "on", "slo_p95_ms": 2000, "slo_p99_ms": 3000, "slo_avg_ms": 1000,
        "slo_min_rps": 50, "slo_error_rate_pct": 5}  # fmt: skip
UNSEEN = ["\u200b", "\u202e", "\u2028", "\u2029", "\x07", "\ue000", "\u0378"]  # Cf Cf Zl Zp Cc Co Cn


def test_a_slug_is_stored_lower_case(staff_api):
    response = staff_api.post("/api/v1/services/", {"name": "Triage AI", "slug": "Triage-AI"}, format="json")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["slug"] == "triage-ai"
    assert staff_api.get("/api/v1/services/triage-ai/").status_code == 200
    patched = staff_api.patch("/api/v1/services/triage-ai/", {"slug": "Triage-V2"}, format="json")
    assert patched.status_code == 200 and patched.json()["slug"] == "triage-v2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "TRIAGE", "slug": "other"}, "name"),
        ({"name": "Other", "slug": "TRIAGE"}, "slug"),
        ({"name": "Other", "slug": "Triage"}, "slug"),
    ],
)
def test_a_name_or_slug_taken_in_another_case_is_a_400_on_its_field(staff_api, body, field):
    service_create(name="Triage", slug="triage")
    response = staff_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["errors"]) == [field]
    assert Service.objects.count() == 1


def test_renaming_to_another_services_name_in_another_case_is_a_400(staff_api):
    service_create(name="Triage", slug="triage")
    service_create(name="Vitals", slug="vitals")
    response = staff_api.patch("/api/v1/services/vitals/", {"name": "triage"}, format="json")
    assert response.status_code == 400 and "name" in response.json()["errors"]
    # Its own name in another case is no clash.
    assert staff_api.patch("/api/v1/services/vitals/", {"name": "VITALS"}, format="json").status_code == 200


@pytest.mark.parametrize("char", UNSEEN)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Tri{c}age"),
        ("owner_team", "Ward{c}team"),
        ("route_prefix", "api/v1/tri{c}age/"),
        ("base_url", "https://triage.example.org/v{c}1"),
    ],
)
def test_an_unseen_character_is_a_400_on_its_field(staff_api, char, field, value):
    body = {"name": "Triage", "slug": "triage", field: value.format(c=char)}
    response = staff_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json()["errors"], response.json()
    assert not Service.objects.exists()


@pytest.mark.parametrize("char", ["\u200b", "\u202e"])
def test_the_service_layer_refuses_them_too(char):
    with pytest.raises(ValidationError) as refused:
        service_create(name=f"Tri{char}age", slug="triage")
    assert "U+" in refused.value.message_dict["name"][0]


def test_a_stored_base_url_with_an_unseen_character_is_reported():
    service = service_create(name="Triage", slug="triage")
    Service.objects.filter(pk=service.pk).update(base_url="https://triage.example.org/\u202ev1")
    assert "U+202E" in Service.objects.get(pk=service.pk).base_url_error


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "TRIAGE", "slug": "other"}, "name"),
        ({"name": "Other", "slug": "TRIAGE"}, "slug"),
        ({"name": "Tri\u200bage", "slug": "other"}, "name"),
        ({"name": "Other", "slug": "other", "owner_team": "Ward\u202eteam"}, "owner_team"),
        ({"name": "Other", "slug": "other", "base_url": "https://other.example.org/\u200b"}, "base_url"),
    ],
)
def test_the_admin_form_refuses_them_on_the_field(client, admin_user, data, field):
    service_create(name="Triage", slug="triage")
    client.force_login(admin_user)
    response = client.post("/admin/services/service/add/", {**FORM, **data})
    assert response.status_code == 200  # the form comes back
    form = response.context["adminform"].form
    assert field in form.errors, form.errors
    assert "__all__" not in form.errors
    assert Service.objects.count() == 1


def test_the_admin_form_stores_a_slug_lower_case(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/services/service/add/", {**FORM, "name": "Triage", "slug": "Triage-AI"})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert Service.objects.get().slug == "triage-ai"


def test_the_database_refuses_names_and_slugs_equal_in_another_case():
    Service.objects.create(name="Triage", slug="triage")
    for row in ({"name": "TRIAGE", "slug": "other"}, {"name": "Other", "slug": "TRIAGE"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Service.objects.create(**row)


def test_the_upgrade_lower_cases_slugs_and_renames_later_case_duplicates():
    executor = MigrationExecutor(connection)
    before, after = (
        [("services", "0005_base_url_credentials_removed")],
        [("services", "0007_name_slug_any_case_visible")],
    )
    executor.migrate(before)
    OldService = executor.loader.project_state(before).apps.get_model("services", "Service")
    for name, slug in [("Triage", "Triage"), ("TRIAGE", "triage"), ("triage", "TRIAGE-2"), ("Vitals", "Vitals")]:
        OldService.objects.create(name=name, slug=slug, description="Ward.")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    rows = list(Service.objects.order_by("pk").values_list("name", "slug"))
    # The oldest of each group keeps its own (its slug lower-cased); "TRIAGE-2" was no one's duplicate.
    assert rows == [("Triage", "triage"), ("TRIAGE-2", "triage-3"), ("triage-3", "triage-2"), ("Vitals", "vitals")]
    renamed = Service.objects.get(slug="triage-3")
    assert "'TRIAGE' -> 'TRIAGE-2'" in renamed.description and renamed.description.endswith("Ward.")
    assert "Renamed" not in Service.objects.get(slug="triage").description  # only the slug's case changed
