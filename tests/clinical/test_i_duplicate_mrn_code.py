"""README: registering an MRN a patient holds (in any spelling of the system) is a 400 `duplicate_mrn`. The answer
was `{"code": "invalid", ...}`: the API's error handler read a Django ValidationError's messages and dropped the
code the service raised. The code a service's errors share is now the 400's `code`; the body keeps its shape."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIRequestFactory

from apps.clinical.services import DUPLICATE_MRN
from apps.core.api.exceptions import api_exception_handler

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("system", [None, "HTTP://Hospital.example.org:80/mrn/"])
def test_a_duplicate_mrn_is_a_400_duplicate_mrn(clinician, patient, system):
    body = {"mrn": patient.mrn, "family_name": "X", "given_name": "Y", "birth_date": "1990-01-01"}
    if system:
        body["system"] = system
    response = clinician.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"detail": "Invalid input.", "code": "duplicate_mrn", "errors": {"mrn": [DUPLICATE_MRN]}}


def test_other_400s_keep_the_code_invalid(clinician, patient):
    body = {"mrn": "MRN-777777", "family_name": "X", "given_name": "Y", "birth_date": "not a date"}
    response = clinician.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def _answer(exc: ValidationError) -> dict:
    request = APIRequestFactory().get("/api/v1/")
    return api_exception_handler(exc, {"request": request, "view": None}).data


@pytest.mark.parametrize(
    ("exc", "code", "errors"),
    [
        (ValidationError({"mrn": ValidationError("Taken.", code="duplicate_mrn")}), "duplicate_mrn",
         {"mrn": ["Taken."]}),
        (ValidationError("At most %(n)s.", code="max", params={"n": 3}), "max", {"non_field_errors": ["At most 3."]}),
        # Mixed or missing codes name no one code: `invalid`, as before.
        (ValidationError({"a": ValidationError("A.", code="x"), "b": ValidationError("B.", code="y")}), "invalid",
         {"a": ["A."], "b": ["B."]}),
        (ValidationError({"slo_p95_ms": "Above p99."}), "invalid", {"slo_p95_ms": ["Above p99."]}),
        (ValidationError(["One.", "Two."]), "invalid", {"non_field_errors": ["One.", "Two."]}),
    ],
)  # fmt: skip
def test_a_django_validation_errors_code_is_kept_and_the_body_keeps_its_shape(exc, code, errors):
    assert _answer(exc) == {"detail": "Invalid input.", "code": code, "errors": errors}
