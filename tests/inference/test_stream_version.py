"""A streamed generation runs on the model its events name. The view resolves the deployment's model once;
the stream used to resolve it again, so a model switch in between (an admin's edit, loaded by another
request) had the events name fp32 while bf16 generated. Real SmolLM2; the switch is made at the one point
between the two (the patient check), as another request would make it."""

import json

import pytest
from django.utils import timezone

from apps.inference import services, serving
from apps.inference.api.views import GenerateView
from apps.inference.backends import Generator
from apps.inference.models import ModelDeployment
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db


def test_a_stream_runs_on_the_model_version_its_events_name(api, issue_token, monkeypatch):
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    _, assistant = services.bundled_deployments_ensure()
    assistant.quantization = "fp32"
    assistant.save()
    assert serving.served(assistant).mode == "fp32"
    streamed_by, real_stream, real_check = [], Generator.stream, GenerateView.check_patient

    def recording_stream(self, *args, **options):
        streamed_by.append(self.mode)
        return real_stream(self, *args, **options)

    def switching_check(self, request, patient_id):
        ModelDeployment.objects.filter(pk=assistant.pk).update(quantization="bf16", updated_at=timezone.now())
        assert serving.served(ModelDeployment.objects.get(pk=assistant.pk)).mode == "bf16"
        return real_check(self, request, patient_id)

    monkeypatch.setattr(Generator, "stream", recording_stream)
    monkeypatch.setattr(GenerateView, "check_patient", switching_check)
    response = api.post("/api/v1/inference/clinical-assistant/generate",
                        {"prompt": "Name one vital sign.", "max_new_tokens": 2, "stream": True}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content).decode()
    done = json.loads(body.split("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    assert streamed_by == [done["quantization"]] == ["fp32"]
