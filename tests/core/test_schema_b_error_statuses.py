"""The inference endpoints answer 413 `request_too_large` (a body past the limit) and generate 499
`client_closed_request` (its client gone), but the OpenAPI document declared neither: `error_responses` took no such
status. It takes them now; the inference views declare both, and every operation that takes a body declares the
product-wide 413 (a postprocessing hook), in the shape its API answers it: the API's error under /api/, an
OperationOutcome under /fhir/."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from apps.core.api.schema import ErrorOutputSerializer, error_responses
from apps.core.api.schema_generator import forget_built_schemas

ERROR = {"$ref": "#/components/schemas/ErrorOutput"}
OUTCOME = {"$ref": "#/components/schemas/FhirOperationOutcome"}
EMBED = "/api/v1/inference/{name}/embed"
GENERATE = "/api/v1/inference/{name}/generate"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _responses(schema: dict, path: str, method: str = "post") -> dict:
    return schema["paths"][path][method]["responses"]


def _schemas(response: dict) -> dict:
    return {media_type: body["schema"] for media_type, body in response["content"].items()}


@pytest.mark.parametrize("path", [EMBED, GENERATE])
def test_the_inference_calls_declare_their_413(schema, path):
    declared = _responses(schema, path).get("413")
    assert declared is not None, sorted(_responses(schema, path))  # was absent
    assert _schemas(declared) == {"application/json": ERROR}
    assert "request_too_large" in declared["description"]
    assert "embed call" in declared["description"]  # the view's own text, not the generic one


def test_generate_declares_its_499_and_embed_does_not(schema):
    declared = _responses(schema, GENERATE).get("499")
    assert declared is not None, sorted(_responses(schema, GENERATE))  # was absent
    assert _schemas(declared) == {"application/json": ERROR}
    assert "client_closed_request" in declared["description"]
    assert "499" not in _responses(schema, EMBED)  # an embedding is not cancelled when its client leaves


def test_every_operation_taking_a_body_declares_the_413_in_its_apis_shape(schema):
    taking = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    assert {"/api/v1/patients/", "/api/v1/services/", "/fhir/Patient/_search"} <= {path for path, _, _ in taking}
    for path, method, operation in taking:
        declared = operation["responses"].get("413")
        assert declared is not None, (method, path)
        expected = OUTCOME if path.startswith("/fhir/") else ERROR
        assert all(body == expected for body in _schemas(declared).values()), (method, path, declared)
    # A read takes no body: nothing is added to it.
    assert "413" not in _responses(schema, "/api/v1/patients/{patient_id}/", "get")
    assert "413" not in _responses(schema, "/fhir/Patient", "get")


def test_the_document_stays_valid(schema):
    validate_schema(schema)


def test_the_schema_endpoint_and_the_command_declare_them(client, db):
    forget_built_schemas()
    try:
        served = client.get("/api/schema/?format=json")
    finally:
        forget_built_schemas()
    assert served.status_code == 200
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", "--skip-checks", stdout=out)
    for document in (served.json(), json.loads(out.getvalue())):
        assert "413" in _responses(document, EMBED)
        assert {"413", "499"} <= set(_responses(document, GENERATE))


def test_error_responses_takes_413_and_499_and_refuses_an_unknown_status():
    declared = error_responses(413, 499, e499="Gone.")
    assert declared[413].response is ErrorOutputSerializer
    assert "request_too_large" in declared[413].description
    assert declared[499].description == "Gone."
    with pytest.raises(ValueError, match="418"):
        error_responses(418)
