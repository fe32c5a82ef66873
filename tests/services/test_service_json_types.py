"""`/api/v1/services/`: a value of the wrong JSON type is a 400 on its field, never converted and stored
(a number as the slug or route prefix, `true` as the minimum throughput, "2.5" as an SLO target: a number in
quotes, as the clinical and inference APIs answer it)."""

import pytest

from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

WRONG = [
    ("slug", 12),
    ("route_prefix", 12),
    ("name", 12),
    ("owner_team", 1.5),
    ("description", False),
    ("base_url", 7),
    ("slo_min_rps", True),
    ("slo_error_rate_pct", False),
    ("slo_error_rate_pct", "2.5"),
    ("slo_p95_ms", "300"),
]


@pytest.mark.parametrize(("field", "value"), WRONG)
def test_a_create_with_the_wrong_json_type_is_a_400_on_the_field(staff_api, field, value):
    body = {"name": "Triage", "slug": "triage", field: value}
    response = staff_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Service.objects.exists()


@pytest.mark.parametrize(("field", "value"), WRONG)
def test_an_update_with_the_wrong_json_type_is_a_400_and_changes_nothing(staff_api, field, value):
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    response = staff_api.patch("/api/v1/services/triage/", {field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    stored = Service.objects.get()
    assert (stored.slug, stored.route_prefix, stored.slo_min_rps) == ("triage", "api/v1/triage/", 20.0)


def test_the_right_json_types_still_work(staff_api):
    body = {"name": "Triage", "slug": "triage", "route_prefix": "api/v1/triage/", "slo_min_rps": 12,
            "slo_error_rate_pct": 2.5}  # fmt: skip
    response = staff_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["slo_min_rps"], response.json()["slo_error_rate_pct"]) == (12.0, 2.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slo_min_rps", "\u0661\u0662"),  # Arabic-Indic 12
        ("slo_error_rate_pct", "\u0662.\u0665"),  # 2.5
        ("slo_p95_ms", "\u0663\u0660\u0660"),  # 300
        ("slo_p95_ms", "\U0001d7d1\U0001d7ce\U0001d7ce"),  # mathematical bold 300
    ],
)
def test_a_number_in_another_script_s_digits_is_a_400_and_changes_nothing(staff_api, field, value):
    """Python's float() and int() read any script's digits: Arabic-Indic 300 was stored as the p95 target 300."""
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    before = Service.objects.values().get()
    response = staff_api.patch("/api/v1/services/triage/", {field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert Service.objects.values().get() == before


def test_read_only_fields_are_ignored_whatever_their_digits(staff_api):
    """DRF ignores what a client sends for a read-only field; the digit check refused it (a 400 on `id`)."""
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    response = staff_api.patch("/api/v1/services/triage/", {"id": "\u0661", "slo_min_rps": 30}, format="json")
    assert response.status_code == 200, response.content
    assert Service.objects.get().slo_min_rps == 30.0
