"""Deployments whose weights are on this host but cannot be loaded (an empty folder, a file that is not
GGUF): the API answers 503 `deployment_unavailable` with the reason in the log, and `optimize model`
reports the deployment as not measurable instead of failing on an empty choice. No model is loaded."""

import pytest

from apps.inference.models import ModelDeployment, QuantizationProfile
from apps.optimizer.models import OptimizationStep
from apps.ratelimits.models import RateLimitPolicy
from tests.optimizer.conftest import optimize

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
