"""Python's int(), float() and Decimal() read any script's digits, and Django's date parsing matches them too: an
observation's value "123" in Arabic-Indic digits recorded 123, double-struck "12" 12, `?limit=` an Arabic-Indic one
was a limit of 1. A number, date or time in a request's body or query string is ASCII digits; any other is a 400 on
its field, and nothing is recorded."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ARABIC_123, MATH_12 = "\u0661\u0662\u0663", "\U0001d7d9\U0001d7da"
VITAL = {"code": "8867-4", "value": 70, "effective_at": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "fields",
    [
        {"value": ARABIC_123},
        {"value": MATH_12},
        {"value": "1\u0662.5"},
        {"effective_at": "\u0662\u0660\u0662\u0664-01-01T00:00:00Z"},
        {"encounter_id": "\u0661"},
    ],
)
def test_a_recorded_observation_takes_only_ascii_digits(clinician, patient, fields):
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", {**VITAL, **fields}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert set(fields) <= set(response.json()["errors"])
    assert not patient.observations.exists()


def test_a_new_patients_birth_date_takes_only_ascii_digits(clinician):
    body = {"mrn": "NEW-1", "family_name": "A", "given_name": "B", "birth_date": "\u0661\u0669\u0667\u0660-01-01"}
    response = clinician.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "birth_date" in response.json()["errors"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("vitals/", {"limit": "\u0661"}),
        ("vitals/", {"since": "\u0662\u0660\u0662\u0664-01-01"}),
        ("vitals/", {"until": "\u0662\u0660\u0662\u0664-01-01T00:00:00Z"}),
        ("encounters/", {"page_size": "\u0661"}),
        ("medications/", {"page_size": MATH_12}),
    ],
)
def test_a_patients_lists_take_only_ascii_digits(clinician, patient, path, query):
    before = AuditEvent.objects.count()
    response = clinician.get(f"/api/v1/patients/{patient.pk}/{path}", query)
    assert response.status_code == 400, response.content[:300]
    assert set(query) <= set(response.json()["errors"])
    assert list(AuditEvent.objects.order_by("id")[before:].values_list("outcome", "patient_id")) == [
        (AuditEvent.Outcome.ERROR, patient.pk)
    ]  # a refusal naming its patient is recorded


@pytest.mark.parametrize("query", [{"offset": "\u0661"}, {"limit": MATH_12}, {"birth_date": "\u0661970-01-01"}])
def test_the_patient_window_takes_only_ascii_digits(clinician, patient, query):
    assert clinician.get("/api/v1/patients/window/", query).status_code == 400
    response = clinician.post("/api/v1/patients/window/", query, format="json")
    assert response.status_code == 400, response.content[:300]
    assert set(query) <= set(response.json()["errors"])


def test_ascii_digits_are_still_numbers(clinician, patient):
    """A JSON body's number and a query string's ASCII digits; a number in quotes is a 400 (test_c2_quoted_numbers)."""
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", {**VITAL, "value": 72.5}, format="json")
    assert response.status_code == 201, response.content[:300]
    assert clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {"limit": "1"}).status_code == 200
