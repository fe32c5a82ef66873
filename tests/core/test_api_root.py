"""GET /api/v1/ (it was a 404): links to the collections, the schema and docs, and the FHIR base; the same
answer for every caller, documented in the OpenAPI schema."""

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def test_the_root_links_to_the_collections_schema_docs_and_fhir(api):
    response = api.get("/api/v1/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    links = response.json()["links"]
    assert links["patients"] == "/api/v1/patients/" and links["services"] == "/api/v1/services/"
    assert links["schema"] == "/api/schema/" and links["docs"] == "/api/docs/" and links["fhir"] == "/fhir/"
    assert resolve(links.pop("fhir") + "metadata").url_name == "fhir-metadata"  # a base, not a resource
    for name, path in links.items():
        assert resolve(path).url_name not in (None, "api-root"), name


def test_every_caller_gets_the_same_answer(api, client, admin_user, issue_token):
    response = api.get("/api/v1/")
    assert response.status_code == 200
    anonymous = response.json()
    token = issue_token("patient:read", name="root-check")
    assert api.get("/api/v1/", HTTP_AUTHORIZATION=f"Bearer {token}").json() == anonymous
    assert api.get("/api/v1/", HTTP_AUTHORIZATION="Bearer not-a-token").json() == anonymous
    client.force_login(admin_user)
    assert client.get("/api/v1/").json() == anonymous
    assert admin_user.username not in str(anonymous)


def test_the_root_shadows_no_route(api):
    assert resolve("/api/v1/patients/").url_name == "patient-list"
    assert resolve("/api/v1/services/").url_name == "service-list"
    assert api.get("/api/v1/nope/").status_code == 404


def test_the_root_is_in_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/"]["get"]
    assert operation["operationId"] == "api_root"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiRootOutput")
