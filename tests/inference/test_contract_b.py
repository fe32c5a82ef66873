"""The inference API's contract, as a review found it wanting (none of these load a model):
- `stream` took "yes", "on" and 1 as true (DRF's BooleanField), where every other field refuses the wrong JSON type;
- the schema described embed, generate and the FHIR Patient read with PhiAPIView's internal docstring
  ("Subclasses name `resource_type`..."), and left out the 415 a body of another type gets;
- a deployment of the other task was "a embedding model; use its embedding endpoint" (no such endpoint);
- every `streams_busy` 503 (shed load, as designed) was an ERROR line of django.request, one per call."""

import logging
from types import SimpleNamespace

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from apps.inference import serving
from apps.inference.api import views

pytestmark = pytest.mark.django_db


@pytest.fixture
def bundled():
    from apps.inference import services

    return services.bundled_deployments_ensure()


def _post(api, token, name: str, task: str, body, **extra):
    return api.post(f"/api/v1/inference/{name}/{task}", body, HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


@pytest.mark.parametrize("value", ["yes", "on", "true", 1, 0, None])
def test_stream_takes_a_json_boolean_only(api, token, bundled, value):
    _, assistant = bundled
    response = _post(api, token, assistant.name, "generate", {"prompt": "Hi", "stream": value}, format="json")
    assert response.status_code == 400, response.content[:300]  # was 200 (a stream) for "yes", "on", 1
    assert "stream" in response.json()["errors"]


def test_a_body_neither_json_nor_a_form_is_a_415(api, token, bundled):
    _, assistant = bundled
    response = _post(api, token, assistant.name, "generate", "Hi", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_deployment_of_the_other_task_names_its_endpoint(api, token, bundled):
    embeddings, assistant = bundled
    response = _post(api, token, assistant.name, "embed", {"inputs": ["fever"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["deployment"] == [
        f"{assistant.name} is a generation deployment; call it at /api/v1/inference/{assistant.name}/generate."
    ]  # was "... is a generation model; use its generation endpoint."
    response = _post(api, token, embeddings.name, "generate", {"prompt": "Hi"}, format="json")
    assert response.json()["errors"]["deployment"] == [
        f"{embeddings.name} is an embedding deployment; call it at /api/v1/inference/{embeddings.name}/embed."
    ]  # was "a embedding model"


def test_the_schema_describes_each_operation_and_its_415():
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    described = {path: operation.get("description", "") for path, item in schema["paths"].items()
                 for method, operation in item.items() if isinstance(operation, dict)}  # fmt: skip
    inherited = sorted(path for path, text in described.items() if "Subclasses name" in text)
    assert inherited == []  # was embed, generate and /fhir/Patient/{patient_id}
    assert "embeddings" in described["/api/v1/inference/{name}/embed"]
    assert "max_new_tokens" in described["/api/v1/inference/{name}/generate"]
    assert "FHIR R4 Patient" in described["/fhir/Patient/{patient_id}"]
    for task in ("embed", "generate"):
        responses = schema["paths"][f"/api/v1/inference/{{name}}/{task}"]["post"]["responses"]
        assert "415" in responses, task


def test_streams_busy_is_a_warning_counted_not_an_error_per_call(api, token, bundled, monkeypatch, caplog):
    """The stream slots are full (a stand-in for the model, so nothing loads): each call is a 503 `streams_busy`;
    the log has one WARNING for the first and a count for the rest, and no django.request ERROR line."""
    _, assistant = bundled
    runner = SimpleNamespace(max_tokens=512, context=2048, token_count=lambda text, cap: 3)
    monkeypatch.setattr(serving, "served", lambda deployment, **options: SimpleNamespace(runner=runner, mode="fp32"))

    def full(deployment, limit):
        raise serving.StreamsFull()

    monkeypatch.setattr(serving.stream_slots, "take", full)
    refusals = views._SlotsRefusalLog()
    monkeypatch.setattr(views, "slots_refusal_log", refusals)
    django_request = logging.getLogger("django.request")
    django_request.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                response = _post(api, token, assistant.name, "generate", {"prompt": "Hi", "stream": True},
                                 format="json")  # fmt: skip
                assert response.status_code == 503
                assert response.json()["code"] == "streams_busy"
            refusals.flush()  # the refusals held back within the interval
    finally:
        django_request.removeHandler(caplog.handler)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []  # was one "Service Unavailable" ERROR per call
    lines = [record.getMessage() for record in caplog.records if "for want of a slot" in record.getMessage()]
    assert [line.split()[0] for line in lines] == ["1", "2"], lines
    assert all(record.levelno == logging.WARNING for record in caplog.records if "for want of a slot" in
               record.getMessage())  # fmt: skip
    assert f"streams_busy ({assistant.name})" in lines[-1]
