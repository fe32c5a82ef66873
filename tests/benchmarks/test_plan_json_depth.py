"""A plan's JSON (its request mix, a request's body, its scopes) nested deeper than anyone means is a field
error, in admin and in the model's own checks, never a RecursionError (a 500)."""

import pytest
from django.core.exceptions import ValidationError

from apps.benchmarks.models import MAX_JSON_DEPTH, BenchmarkPlan
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db
DEEP = "[" * 100_000 + "]" * 100_000  # past the JSON parser's stack
DEEP_BODY = '[{"path": "/x", "weight": 1, "body": ' + "[" * 600 + "]" * 600 + "}]"  # parsed, then too deep


@pytest.fixture
def service():
    return service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]


def _form(service, **fields) -> dict:
    return {"name": "p", "service": service.pk, "kind": "load", "scopes": '["patient:read"]', "users": 3,
            "spawn_rate": 10, "duration_seconds": 5, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": '[{"path": "/x", "weight": 1}]', **fields}  # fmt: skip


@pytest.mark.parametrize(("field", "value"), [("requests", DEEP), ("requests", DEEP_BODY), ("scopes", DEEP)])
def test_admin_shows_a_field_error_for_json_nested_too_deep(service, admin_client, field, value):
    response = admin_client.post("/admin/benchmarks/benchmarkplan/add/", _form(service, **{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert not BenchmarkPlan.objects.exists()


def test_a_body_nested_too_deep_is_refused_by_the_model(service):
    body: list = []
    for _ in range(600):
        body = [body]
    plan = BenchmarkPlan(name="p", service=service, requests=[{"path": "/x", "weight": 1, "body": body}])
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert f"{MAX_JSON_DEPTH} levels" in refused.value.message_dict["requests"][0]


def test_a_body_of_ordinary_depth_is_accepted(service):
    body = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    BenchmarkPlan(name="p", service=service, requests=[{"path": "/x", "weight": 1, "body": body}]).full_clean()
