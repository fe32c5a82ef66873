"""A model that raises on a call's input answers that caller 503 `inference_failed`, with the reason in the
log and not in the answer; it used to be a 500 with the model's traceback. A real model cannot be made to
fail on cue: the served MiniLM's batch function is wrapped by one that raises on a marked input, and the
real model answers everything else."""

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment

pytestmark = pytest.mark.django_db

POISON = "this input breaks the model"


@pytest.fixture
def breakable(monkeypatch):
    deployment = ModelDeployment.objects.create(name="breakable", source=ModelDeployment.Source.MINILM,
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    batcher = serving.served(deployment).batcher
    real = batcher.run_batch

    def run_batch(texts):
        if POISON in texts:
            raise RuntimeError("index out of range in self")
        return real(texts)

    monkeypatch.setattr(batcher, "run_batch", run_batch)
    return deployment


def post(api, token, inputs):
    return api.post("/api/v1/inference/breakable/embed", {"inputs": inputs}, format="json",
                    HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


def test_a_model_error_on_an_input_is_a_503_inference_failed(api, token, breakable, caplog):
    failed = post(api, token, ["fever", POISON])
    assert failed.status_code == 503, failed.content
    assert failed.json()["code"] == "inference_failed"
    assert "index out of range" not in failed.content.decode()
    assert "deployment breakable failed on a call: RuntimeError: index out of range in self" in caplog.text
    assert POISON not in caplog.text  # the input may be about a patient: never in the log

    served = post(api, token, ["fever"])  # the model serves on
    assert served.status_code == 200 and served.json()["cached"] is False
