"""JSON bodies of the clinical API: a string field takes a JSON string, not a number (DRF's CharField read
`{"mrn": 123}` as "123" and the lookup answered 404 for a malformed request), and a body that is not JSON is a
415 on every endpoint that documents a JSON body (the lookup, the create and the vitals took form bodies too).
Query strings are untouched: their values are always strings."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Observation, Patient
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/patients/lookup/"
WINDOW = "/api/v1/patients/window/"
PATIENTS = "/api/v1/patients/"


@pytest.fixture
def numbered(db) -> Patient:
    """A patient whose MRN is all digits: the number 123 coerced to a string would find it."""
    return patient_create(mrn="123", family_name="Ng", given_name="Al", birth_date=date(1970, 1, 1))


@pytest.mark.parametrize("mrn", [123, 1.5, True, ["123"], {"value": "123"}])
def test_a_lookup_by_a_mrn_that_is_not_a_json_string_is_a_400_on_the_field(clinician, numbered, mrn):
    before = AuditEvent.objects.count()
    response = clinician.post(LOOKUP, {"mrn": mrn}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a string" in str(response.json()["errors"]["mrn"]).lower()
    assert AuditEvent.objects.count() == before  # nothing looked up


def test_a_lookup_system_that_is_not_a_json_string_is_a_400_on_the_field(clinician, numbered):
    response = clinician.post(LOOKUP, {"mrn": "123", "system": 1}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a string" in str(response.json()["errors"]["system"]).lower()


def test_the_same_lookup_as_a_string_still_finds_the_patient(clinician, numbered):
    response = clinician.post(LOOKUP, {"mrn": "123"}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["id"] == numbered.pk


@pytest.mark.parametrize(("field", "value"), [("name", 123), ("family", 123), ("given", 45)])
def test_a_posted_window_name_that_is_not_a_json_string_is_a_400_on_the_field(clinician, numbered, field, value):
    before = AuditEvent.objects.count()
    response = clinician.post(WINDOW, {field: value}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a string" in str(response.json()["errors"][field]).lower()
    assert AuditEvent.objects.count() == before


def test_a_query_string_is_still_read_as_text(clinician, numbered):
    """Query values are always strings: the strict fields take them as before."""
    for url in (WINDOW, PATIENTS):
        response = clinician.get(url, {"family": "Ng", "given": "Al"})
        assert response.status_code == 200, response.content[:300]
        assert [row["id"] for row in response.json()["results"]] == [numbered.pk]


@pytest.mark.parametrize("field", ["mrn", "family_name", "given_name", "system"])
def test_a_create_with_a_number_for_a_string_field_is_a_400_and_stores_nothing(clinician, field):
    body = {"mrn": "MRN-9", "family_name": "Doe", "given_name": "Jo", "birth_date": "1980-01-02", field: 9}
    response = clinician.post(PATIENTS, body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a string" in str(response.json()["errors"][field]).lower()
    assert not Patient.objects.exists()


@pytest.mark.parametrize("field", ["code", "unit"])
def test_a_vital_with_a_number_for_a_string_field_is_a_400_and_stores_nothing(clinician, numbered, field):
    body = {"code": "8867-4", "value": 70, "unit": "/min", "effective_at": "2024-01-01T08:00:00Z", field: 88674}
    response = clinician.post(f"{PATIENTS}{numbered.pk}/vitals/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "must be a string" in str(response.json()["errors"][field]).lower()
    assert not Observation.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (LOOKUP, "mrn=123"),
        (PATIENTS, "mrn=MRN-9&family_name=Doe&given_name=Jo&birth_date=1980-01-02"),
        ("vitals", "code=8867-4&value=70&effective_at=2024-01-01T08:00:00Z"),
        (WINDOW, "family=Ng"),
    ],
)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_is_a_415_with_a_json_error(clinician, numbered, path, body, content_type):
    if path == "vitals":
        path = f"{PATIENTS}{numbered.pk}/vitals/"
    if content_type.startswith("multipart"):
        fields = [field.split("=", 1) for field in body.split("&")]
        body = "".join(f'--x\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields)
        body += "--x--\r\n"
    before = (AuditEvent.objects.count(), Patient.objects.count(), Observation.objects.count())
    response = clinician.post(path, body, content_type=content_type)
    assert response.status_code == 415, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json() or "errors" in response.json()
    assert (AuditEvent.objects.count(), Patient.objects.count(), Observation.objects.count()) == before


def test_the_schema_documents_only_json_bodies():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in (LOOKUP, PATIENTS, "/api/v1/patients/{patient_id}/vitals/", WINDOW):
        assert set(paths[path]["post"]["requestBody"]["content"]) == {"application/json"}, path
