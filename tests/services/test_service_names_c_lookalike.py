"""Service names that read the same are one name to a reader (admin, the dashboard, the service pickers of alert
rules and benchmarks): full-width or compatibility letters, doubled, leading or trailing spaces and case.
A name is stored normalised (NFKC, whitespace collapsed), a look-alike of another service's is a 400 on `name`
(a form error in admin), and stored look-alikes are named by `manage.py check` (services.W003), never renamed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.services.checks import LOOK_ALIKE_NAMES, look_alike_names
from apps.services.models import Service
from apps.services.services import service_create, service_update

pytestmark = pytest.mark.django_db

FORM = {"kind": "api", "is_active": "on", "slo_p95_ms": 2000, "slo_p99_ms": 3000, "slo_avg_ms": 1000,
        "slo_min_rps": 50, "slo_error_rate_pct": 5}  # fmt: skip
FULL_WIDTH_EMR = "\uff25\uff2d\uff32"  # full-width EMR


@pytest.mark.parametrize(
    "look_alike",
    [
        FULL_WIDTH_EMR,
        f"{FULL_WIDTH_EMR} Triage",
        "EMR\u3000Triage",
        "EMR  Triage",
        "emr triage",
        "\uff45\uff4d\uff52 triage",
    ],
)
def test_a_look_alike_of_another_services_name_is_a_400_on_name(staff_api, look_alike):
    service_create(name="EMR Triage" if "riage" in look_alike else "EMR", slug="emr")
    response = staff_api.post("/api/v1/services/", {"name": look_alike, "slug": "other"}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["errors"]) == ["name"]
    assert Service.objects.count() == 1


def test_a_name_is_stored_normalised(staff_api):
    response = staff_api.post("/api/v1/services/", {"name": f"{FULL_WIDTH_EMR}\u3000 Triage", "slug": "emr"},
                              format="json")  # fmt: skip
    assert response.status_code == 201, response.content[:300]
    assert response.json()["name"] == "EMR Triage"
    assert Service.objects.get().name == "EMR Triage"


def test_renaming_to_a_look_alike_is_a_400_and_changes_nothing(staff_api):
    service_create(name="EMR", slug="emr")
    service_create(name="Vitals", slug="vitals")
    response = staff_api.patch("/api/v1/services/vitals/", {"name": FULL_WIDTH_EMR}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["name"]
    assert Service.objects.get(slug="vitals").name == "Vitals"
    with pytest.raises(ValidationError) as refused:
        service_update(service=Service.objects.get(slug="vitals"), name=" emr ")
    assert "name" in refused.value.message_dict


def test_the_admin_form_refuses_a_look_alike_on_the_field(client, admin_user):
    service_create(name="EMR", slug="emr")
    client.force_login(admin_user)
    response = client.post("/admin/services/service/add/", {**FORM, "name": FULL_WIDTH_EMR, "slug": "emr-2"})
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "name" in form.errors and "__all__" not in form.errors
    assert Service.objects.count() == 1


def test_the_admin_form_stores_the_name_normalised(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/services/service/add/", {**FORM, "name": f"{FULL_WIDTH_EMR}  Triage", "slug": "emr"})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert Service.objects.get().name == "EMR Triage"


def _stored_pair() -> tuple[Service, Service]:
    # As stored before names were normalised (or by raw SQL, a fixture): the database folds only case.
    return Service.objects.create(name="EMR", slug="emr"), Service.objects.create(name=FULL_WIDTH_EMR, slug="emr-wide")


def test_the_check_names_stored_look_alikes_and_renames_nothing():
    _stored_pair()
    Service.objects.create(name="Vitals", slug="vitals")
    warnings = look_alike_names()
    assert [w.id for w in warnings] == [LOOK_ALIKE_NAMES]
    assert "emr ('EMR')" in warnings[0].msg and "emr-wide" in warnings[0].msg and "vitals" not in warnings[0].msg
    assert sorted(Service.objects.values_list("name", flat=True)) == ["EMR", "Vitals", FULL_WIDTH_EMR]


def test_no_warning_without_look_alikes():
    Service.objects.create(name="EMR", slug="emr")
    Service.objects.create(name="EMR Triage", slug="emr-triage")
    assert look_alike_names() == []


def test_a_stored_look_alike_pair_stays_editable_in_its_other_fields(staff_api, client, admin_user):
    _plain, wide = _stored_pair()
    assert staff_api.patch("/api/v1/services/emr-wide/", {"owner_team": "Ward 3"}, format="json").status_code == 200
    whole = {**staff_api.get("/api/v1/services/emr/").json(), "description": "Kept."}
    whole = {k: v for k, v in whole.items() if k not in ("id", "base_url_error", "created_at", "updated_at")}
    assert staff_api.put("/api/v1/services/emr/", whole, format="json").status_code == 200
    client.force_login(admin_user)
    data = {**FORM, "name": wide.name, "slug": wide.slug, "owner_team": "Ward 4"}
    response = client.post(f"/admin/services/service/{wide.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    wide.refresh_from_db()
    assert (wide.name, wide.owner_team) == (FULL_WIDTH_EMR, "Ward 4")
    # Renaming it to a name of its own clears the warning.
    assert staff_api.patch("/api/v1/services/emr-wide/", {"name": "EMR Wide"}, format="json").status_code == 200
    assert look_alike_names() == []
