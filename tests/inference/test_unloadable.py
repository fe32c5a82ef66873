"""Deployments whose weights are on this host but cannot be loaded (an empty folder, a file that is not
GGUF): the API answers 503 `deployment_unavailable` with the reason in the log, and `optimize model`
reports the deployment as not measurable instead of failing on an empty choice. No model is loaded."""

import pytest

from apps.inference.models import ModelDeployment, QuantizationProfile
from apps.optimizer.models import OptimizationStep
from apps.ratelimits.models import RateLimitPolicy
from tests.optimizer.support import optimize

pytestmark = pytest.mark.django_db


@pytest.fixture
def unloadable(tmp_path):
    """Two deployments admin accepts (their paths exist) whose weights transformers cannot read."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf file at all")
    empty = ModelDeployment(name="empty-folder", source="path", local_path=str(tmp_path / "empty"), task="embedding")
    bad = ModelDeployment(name="bad-gguf", source="path", local_path=str(tmp_path / "bad.gguf"), task="generation")
    for deployment in (empty, bad):
        deployment.full_clean()
        deployment.save()
    return empty, bad


def test_weights_that_cannot_be_loaded_are_a_503_with_the_reason_in_the_log(api, issue_token, unloadable, caplog):
    token = issue_token("inference")
    calls = [("empty-folder", "embed", {"inputs": ["chest pain"]}), ("bad-gguf", "generate", {"prompt": "hi"})]
    for name, endpoint, body in calls:
        response = api.post(f"/api/v1/inference/{name}/{endpoint}", body, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
        assert response.status_code == 503, response.content
        assert response.json()["code"] == "deployment_unavailable"
        assert f"deployment {name} cannot be served" in caplog.text
    assert "not a GGUF file" in caplog.text


def test_optimize_model_reports_a_deployment_it_cannot_load(unloadable):
    run, output, code = optimize("model", "empty-folder", "--inline")
    step = run.steps.get()
    assert step.status == OptimizationStep.Status.SKIPPED, output
    assert "empty-folder" in step.findings["skipped"] and "cannot be loaded" in step.findings["skipped"]
    assert code == 0 and not QuantizationProfile.objects.exists()


@pytest.fixture
def short_context_model(tmp_path):
    """A real (tiny, untrained) GPT-2 saved to a local folder: 48 learned positions, SmolLM2's tokenizer and
    chat template. Learned positions are why generating past the context fails outright."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from apps.inference.backends import LoadSpec, _base_model

    tokenizer, _, _ = _base_model(LoadSpec(ModelDeployment.Source.SMOLLM2, "", "generation", "cpu", 512))
    tokenizer.save_pretrained(tmp_path)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=48, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    return tmp_path


def test_a_prompt_and_its_new_tokens_past_the_models_context_are_a_400(api, issue_token, short_context_model):
    """Each under its own cap (input 40, output 30), together past the model's 48 positions: the batch failed
    with an IndexError, a 500."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    ModelDeployment.objects.create(name="short", source="path", local_path=str(short_context_model),
                                   task="generation", device="cpu", quantization="fp32", max_input_tokens=40,
                                   max_new_tokens=30)  # fmt: skip
    token = issue_token("inference")

    def generate(max_new_tokens: int):
        body = {"prompt": "Name one vital sign.", "max_new_tokens": max_new_tokens}
        return api.post("/api/v1/inference/short/generate", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")

    refused = generate(30)
    assert refused.status_code == 400, refused.content
    assert "context of 48 tokens" in refused.json()["errors"]["max_new_tokens"][0]
    assert generate(4).status_code == 200
