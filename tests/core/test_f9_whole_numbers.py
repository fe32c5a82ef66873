"""An integer field takes a JSON integer in a body and a sign and ASCII digits in a query string: DRF read
`{"encounter_id": 3.0}` as encounter 3, `{"offset": 1e2}` as 100 and `?limit=2_0` as 20 (int() takes
underscores, DRF drops a trailing ".0"), so a client computing its ids or paging as floats was never told."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.http import QueryDict
from rest_framework import serializers

from apps.clinical.models import Encounter, Observation
from apps.clinical.services import patient_create
from apps.core.api.numbers import StrictFloatField, StrictIntegerField
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

WINDOW = "/api/v1/patients/window/"


class _Count(serializers.Serializer):
    n = StrictIntegerField()
    x = StrictFloatField(required=False)


@pytest.fixture
def clinician(api, issue_token):
    token = issue_token("patient:read", "patient:write", "clinical:read", "clinical:write", name="ward-app")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


@pytest.fixture
def patient(db):
    return patient_create(
        mrn="MRN-000123", family_name="Müller", given_name="Anna", birth_date=date(1970, 5, 4), sex="female"
    )


def _errors(response, field: str) -> str:
    assert response.status_code == 400, response.content[:300]
    return str(response.json()["errors"][field]).lower()


@pytest.mark.parametrize("body", ['{"n": 3.0}', '{"n": 1e2}', '{"n": 100E-2}', '{"n": -0.0}'])
def test_a_json_float_is_not_an_integer_even_when_it_is_whole(body):
    serializer = _Count(data=json.loads(body))
    assert not serializer.is_valid()
    assert "whole number" in str(serializer.errors["n"]).lower()


@pytest.mark.parametrize("text", ["2_0", "20.0", "1e1", " 20", "20 ", "2 0", "+-2", "", "0x10"])
def test_a_query_string_integer_is_a_sign_and_ascii_digits(text):
    serializer = _Count(data=QueryDict(f"n={text}"))
    assert not serializer.is_valid()
    assert "n" in serializer.errors


@pytest.mark.parametrize(("text", "expected"), [("20", 20), ("+5", 5), ("-3", -3), ("007", 7)])
def test_a_query_string_integer_still_reads(text, expected):
    serializer = _Count(data=QueryDict(f"n={text.replace('+', '%2B')}"))
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["n"] == expected


def test_a_json_integer_still_reads_and_a_float_field_still_takes_floats():
    serializer = _Count(data={"n": 3, "x": 1e2})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"n": 3, "x": 100.0}


@pytest.mark.parametrize("value", [True, "3"])
def test_a_boolean_or_quoted_integer_is_still_refused_as_before(value):
    serializer = _Count(data={"n": value})
    assert not serializer.is_valid()
    assert "json number" in str(serializer.errors["n"]).lower()


def test_a_float_encounter_id_attaches_no_encounter(clinician, patient):
    stay = Encounter.objects.create(patient=patient, encounter_class="IMP", status="in-progress",
                                    period_start=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = f'{{"code": "8867-4", "value": 80, "effective_at": "{at}", "encounter_id": {stay.pk}.0}}'
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, content_type="application/json")
    assert "whole number" in _errors(response, "encounter_id")
    assert not Observation.objects.filter(patient=patient).exists()
    body = body.replace(f"{stay.pk}.0", str(stay.pk))
    response = clinician.post(f"/api/v1/patients/{patient.pk}/vitals/", body, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    assert Observation.objects.get(patient=patient).encounter_id == stay.pk


@pytest.mark.parametrize(("field", "literal"), [("offset", "1e2"), ("limit", "10.0")])
def test_a_posted_window_with_a_float_is_a_400_on_the_field(clinician, patient, field, literal):
    body = f'{{"family": "Müller", "{field}": {literal}}}'
    response = clinician.post(WINDOW, body.encode(), content_type="application/json")
    assert "whole number" in _errors(response, field)


@pytest.mark.parametrize("limit", ["2_0", "20.0", "1e1"])
def test_a_queried_window_with_a_limit_that_is_not_digits_is_a_400(clinician, patient, limit):
    response = clinician.get(WINDOW, {"family": "Müller", "limit": limit})
    assert "whole number" in _errors(response, "limit")
    response = clinician.get(WINDOW, {"family": "Müller", "limit": "20"})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["count"] == 1


def test_a_service_slo_target_in_ms_is_a_json_integer(staff_api):
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    response = staff_api.patch("/api/v1/services/triage/", b'{"slo_p95_ms": 3e2}', content_type="application/json")
    assert "whole number" in _errors(response, "slo_p95_ms")
    response = staff_api.patch("/api/v1/services/triage/", {"slo_p95_ms": 300}, format="json")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["slo_p95_ms"] == 300
