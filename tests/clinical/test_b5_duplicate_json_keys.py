"""A JSON body naming a field twice (`{"mrn": "A", "mrn": "B"}`) is refused, for every JSON endpoint (the parser).

Before: json kept the last value unseen: a patient was created with MRN "B", a heart rate stored as 80 from a body
that also said 300 (a client's own checks, or a proxy's, may have read the first). Now: a 400 with a field error on
the name, and nothing written. FHIR bodies are forms (JSON there is a 415); a repeated form field was refused
already, and still is.
"""

import io

import pytest
from rest_framework.exceptions import ParseError, ValidationError

from apps.clinical.models import Observation, Patient
from apps.core.api.parsers import DUPLICATE_KEY, JSONParser

pytestmark = pytest.mark.django_db

JSON = "application/json"


def _post(client, path: str, body: str):
    return client.generic("POST", path, body, content_type=JSON)


def test_a_patient_create_naming_mrn_twice_is_refused(clinician):
    body = '{"mrn": "MRN-9A", "mrn": "MRN-9B", "family_name": "X", "given_name": "Y", "birth_date": "1970-01-01",' \
        ' "sex": "female"}'  # fmt: skip
    response = _post(clinician, "/api/v1/patients/", body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"mrn": [DUPLICATE_KEY]}
    assert not Patient.objects.filter(mrn__in=["MRN-9A", "MRN-9B"]).exists()
    ok = _post(clinician, "/api/v1/patients/", body.replace('"mrn": "MRN-9A", ', ""))
    assert ok.status_code == 201 and ok.json()["mrn"] == "MRN-9B"


def test_a_vital_sign_naming_its_value_twice_is_refused(clinician, patient):
    path = f"/api/v1/patients/{patient.pk}/vitals/"
    body = '{"code": "8867-4", "value": 300, "value": 80, "effective_at": "2026-12-06T10:00:00Z"}'
    response = _post(clinician, path, body)
    assert response.status_code == 400 and response.json()["errors"] == {"value": [DUPLICATE_KEY]}
    assert not Observation.objects.filter(patient=patient).exists()
    assert _post(clinician, path, body.replace('"value": 300, ', "")).status_code == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"a": 1, "a": 1}', {"a": [DUPLICATE_KEY]}),  # even with the same value
        (b'{"a": {"b": 1, "c": {"d": 1, "d": 2}}}', {"a": {"c": {"d": [DUPLICATE_KEY]}}}),
        (b'{"items": [{"x": 1}, {"x": 1, "x": 2}]}', {"items": [{}, {"x": [DUPLICATE_KEY]}]}),
        (b'[{"x": 1, "y": 2, "y": 3}]', [{"y": [DUPLICATE_KEY]}]),
    ],
)
def test_the_parser_names_the_duplicated_field_where_it_is(body, error):
    with pytest.raises(ValidationError) as refused:
        JSONParser().parse(io.BytesIO(body))
    assert ValidationError(error).detail == refused.value.detail


def test_the_parser_reads_what_it_read_before():
    body = b'{"a": [1, 2.5, {"b": null, "c": "\\u00e9"}], "d": {"a": 1}, "e": true}'
    assert JSONParser().parse(io.BytesIO(body)) == {"a": [1, 2.5, {"b": None, "c": "é"}], "d": {"a": 1}, "e": True}
    for bad in (b'{"a": NaN}', b'{"a": 1', b'{"\\ud800": 1, "\\ud800": 2}'):  # a lone surrogate: no echo
        with pytest.raises(ParseError):
            JSONParser().parse(io.BytesIO(bad))


def test_fhir_bodies_are_forms_and_a_repeated_field_is_refused(clinician, patient):
    as_json = _post(clinician, "/fhir/Observation/_search", f'{{"patient": "{patient.pk}", "patient": "2"}}')
    assert as_json.status_code == 415
    form = clinician.generic(
        "POST", "/fhir/Observation/_search", f"patient={patient.pk}&patient=2",
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert form.status_code == 400 and form.json()["resourceType"] == "OperationOutcome"
    assert form.json()["issue"][0]["expression"] == ["patient"]
