"""`is_active` takes only a JSON boolean in a JSON body, as the text and number fields take only their own JSON
type: DRF's BooleanField read "yes", "no", "on", "off", "0", 1... as booleans, so `"is_active": "no"` deactivated
a service (and `"yes"` kept one on) without the client learning its payload was wrong. A form body's values are
all text, and read as DRF documents them."""

import pytest

from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

NOT_BOOLEANS = ["yes", "no", "true", "false", "on", "off", "0", "1", 1, 0, "Y"]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_a_create_with_a_non_boolean_is_active_is_a_400_on_the_field(staff_api, value):
    body = {"name": "Triage", "slug": "triage", "is_active": value}
    response = staff_api.post("/api/v1/services/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["errors"]) == ["is_active"]
    assert "JSON boolean" in str(response.json()["errors"]["is_active"])
    assert not Service.objects.exists()


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_an_update_with_a_non_boolean_is_active_changes_nothing(staff_api, value):
    service_create(name="Triage", slug="triage", is_active=True)
    response = staff_api.patch("/api/v1/services/triage/", {"is_active": value}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["errors"]) == ["is_active"]
    assert Service.objects.get().is_active is True


def test_null_is_refused_too(staff_api):
    service_create(name="Triage", slug="triage")
    response = staff_api.patch("/api/v1/services/triage/", {"is_active": None}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["is_active"]


def test_json_booleans_still_work(staff_api):
    service_create(name="Triage", slug="triage")
    response = staff_api.patch("/api/v1/services/triage/", {"is_active": False}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert Service.objects.get().is_active is False
    response = staff_api.patch("/api/v1/services/triage/", {"is_active": True}, format="json")
    assert response.status_code == 200 and Service.objects.get().is_active is True


def test_a_form_body_reads_drf_s_strings(staff_api):
    """A form (or multipart) body can only send text: there "false" is false, as DRF documents."""
    service_create(name="Triage", slug="triage")
    response = staff_api.patch("/api/v1/services/triage/", {"is_active": "false"}, format="multipart")
    assert response.status_code == 200, response.content[:300]
    assert Service.objects.get().is_active is False
