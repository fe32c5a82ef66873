"""The `Allow` header of the FHIR API names only the methods a path really takes. A path of a type this server does
not hold (`GET /fhir/Nope/1`, a 404 OperationOutcome) named all seven (GET, POST, PUT, PATCH, DELETE, HEAD,
OPTIONS), and a 405 on a known type named OPTIONS, which it answers 405 as well. The 404s name none now, and
OPTIONS' 405 on such a path an empty list (RFC 9110: a 405 carries an Allow, empty when nothing is allowed)."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "head", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/fhir/Nope/1", "/fhir/Nope", "/fhir"])
def test_a_path_this_server_does_not_support_is_a_404_naming_no_method(clinician, method, path):
    response = getattr(clinician, method)(path)
    assert response.status_code == 404, response.content[:500]
    assert "Allow" not in response
    if method != "head":
        assert OperationOutcome.model_validate(response.json()).issue[0].code == "not-found"


@pytest.mark.parametrize("path", ["/fhir/Nope/1", "/fhir/Condition", "/fhir"])
def test_options_on_a_path_this_server_does_not_support_allows_nothing(clinician, path):
    """A 405, as OPTIONS is on every FHIR path; the Allow a 405 must carry is empty: no method is allowed here."""
    response = clinician.options(path)
    assert response.status_code == 405, response.content[:500]
    assert OperationOutcome.model_validate(response.json()).issue[0].code == "not-supported"
    assert response["Allow"] == ""


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/fhir/Patient/{id}", "GET, HEAD"),
        ("options", "/fhir/Patient/{id}", "GET, HEAD"),
        ("delete", "/fhir/Observation/1", "GET, HEAD"),
        ("delete", "/fhir/Patient", "GET, HEAD"),
        ("get", "/fhir/Patient/_search", "POST"),
        ("put", "/fhir/Patient/{id}/$everything", "GET, HEAD, POST"),
        ("post", "/fhir/metadata", "GET, HEAD"),
        ("options", "/fhir/metadata", "GET, HEAD"),
    ],
)
def test_a_method_a_known_path_does_not_take_is_a_405_naming_those_it_does(clinician, patient, method, path, allowed):
    response = getattr(clinician, method)(path.format(id=patient.pk))
    assert response.status_code == 405, response.content[:500]
    assert OperationOutcome.model_validate(response.json()).issue[0].code == "not-supported"
    assert response["Allow"] == allowed
