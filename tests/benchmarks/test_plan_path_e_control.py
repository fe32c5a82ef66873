"""A request path holding CR/LF, a space or another control character was stored (the plan "validated before
it is stored"), and its run then "succeeded" with every request failed; CR/LF would end the request line and
begin a header of the path's choosing. Refused on the plan's `requests` field, in the model and in admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.benchmarks.models import BenchmarkPlan
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]


@pytest.mark.parametrize(
    "path",
    ["/healthz\r\nX-Evil: 1", "/healthz\nX-Evil: 1", "/a b", "/a\tb", "/a\x00b", "/a\x7fb", "/a\u2028b", "/a\u200bb"],
)
def test_a_path_with_control_characters_or_spaces_is_refused_on_the_field(service, path):
    plan = BenchmarkPlan(name="plan", service=service, requests=[{"path": path, "weight": 1}])
    with pytest.raises(ValidationError) as refused:
        plan.full_clean()
    assert list(refused.value.message_dict) == ["requests"]
    assert "control characters" in refused.value.message_dict["requests"][0]


def test_percent_encoded_and_placeholder_paths_are_still_accepted(service):
    for path in ("/a%20b", "/api/v1/patients/{patient_id}/", "/search?q=a%0D", "/é"):
        BenchmarkPlan(name="plan", service=service, requests=[{"path": path, "weight": 1}]).full_clean()


def test_admin_shows_the_error_and_stores_nothing(service, admin_client):
    form = {"name": "crlf", "service": service.pk, "kind": "load", "users": 10, "spawn_rate": 10,
            "duration_seconds": 60, "generator_processes": 1, "step_users": 10, "step_seconds": 20,
            "max_users": 200, "spike_multiplier": 4, "min_regression_pct": 5, "enabled": "on",
            "requests": '[{"path": "/healthz\\r\\nX-Evil: 1", "weight": 1}]', "scopes": '["patient:read"]'}  # fmt: skip
    response = admin_client.post("/admin/benchmarks/benchmarkplan/add/", form)
    assert response.status_code == 200
    assert "control characters" in str(response.context["adminform"].form.errors["requests"])
    assert not BenchmarkPlan.objects.exists()
