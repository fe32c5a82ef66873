"""The anonymous OpenAPI document is built once per process: each build takes about 0.75 s of CPU, and
/api/schema/ answers anyone."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.core.api.schema_generator import forget_built_schemas

pytestmark = pytest.mark.django_db


@pytest.fixture
def builds(monkeypatch):
    forget_built_schemas()
    made = []
    real = SchemaGenerator.get_schema

    def counted(self, request=None, public=False):
        made.append(1)
        return real(self, request=request, public=public)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    yield made
    forget_built_schemas()


def test_anonymous_callers_share_one_build(client, builds):
    documents = [client.get("/api/schema/?format=json") for _ in range(3)]
    assert all(response.status_code == 200 for response in documents)
    assert documents[0].content == documents[2].content
    assert "/api/v1/services/" in documents[0].json()["paths"]
    assert len(builds) == 1
    assert client.get("/api/schema/").status_code == 200  # YAML: rendered from the same document
    assert len(builds) == 1


def test_signed_in_callers_get_a_fresh_build(client, admin_user, builds):
    client.force_login(admin_user)
    client.get("/api/schema/?format=json")
    client.get("/api/schema/?format=json")
    assert len(builds) == 2
