"""One StrictFloatField: the services API had its own (apps.core.api.fields), which took a JSON body's "0.5"
for 0.5 (and DRF's IntegerField "300" for its ms targets) where the clinical and inference APIs' fields
(apps.core.api.numbers) answer 400 on the field. Now every API's numbers arrive as JSON numbers in a body; a
query string's text still reads as a number."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from rest_framework import serializers

from apps.core.api import fields, numbers
from apps.services.api.serializers import ServiceSerializer
from apps.services.models import Service
from apps.services.services import service_create


class _Reading(serializers.Serializer):
    value = numbers.StrictFloatField()


def test_there_is_one_strict_float_field():
    assert getattr(fields, "StrictFloatField", numbers.StrictFloatField) is numbers.StrictFloatField
    service = ServiceSerializer().fields
    assert isinstance(service["slo_error_rate_pct"], numbers.StrictFloatField)
    assert isinstance(service["slo_p95_ms"], numbers.StrictIntegerField)  # its integers: the same rule


@pytest.mark.parametrize("value", ["0.5", "2", True, False, 1e400, "\u0662.\u0665"])
def test_a_body_s_number_in_quotes_a_boolean_or_infinity_is_refused(value):
    reading = _Reading(data={"value": value})
    assert not reading.is_valid()
    assert "value" in reading.errors


def test_a_query_string_s_text_still_reads_as_a_number():
    reading = _Reading(data=QueryDict("value=0.5"))
    assert reading.is_valid(), reading.errors
    assert reading.validated_data["value"] == 0.5


@pytest.mark.parametrize("text", ["\u0662.\u0665", "nan", "inf"])
def test_a_query_string_s_other_digits_or_non_finite_text_is_refused(text):
    reading = _Reading(data=QueryDict(f"value={text}"))
    assert not reading.is_valid()
    assert "value" in reading.errors


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [("slo_min_rps", "30"), ("slo_error_rate_pct", "0.5"),
                                               ("slo_p95_ms", "300")])  # fmt: skip
def test_the_services_api_answers_400_to_a_number_in_quotes_and_stores_nothing(staff_api, field, value):
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    before = Service.objects.values().get()
    response = staff_api.patch("/api/v1/services/triage/", {field: value}, format="json")
    assert response.status_code == 400, response.content  # the old fields: 200, the number stored
    assert field in response.json()["errors"]
    assert Service.objects.values().get() == before


@pytest.mark.django_db
def test_the_services_api_still_takes_json_numbers(staff_api):
    service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/", slo_min_rps=20.0)
    response = staff_api.patch("/api/v1/services/triage/", {"slo_error_rate_pct": 0.5, "slo_p95_ms": 300},
                               format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert (response.json()["slo_error_rate_pct"], response.json()["slo_p95_ms"]) == (0.5, 300)
