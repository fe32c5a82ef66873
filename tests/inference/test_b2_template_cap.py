"""A generation model's chat template counts in its input cap (SmolLM2's adds 30 tokens to every prompt): admin
refuses a cap the template alone fills, and a prompt past the cap is refused naming the template's share (a cap of
16 refused "hi" as "At least 31 tokens"). Real SmolLM2, no generation."""

import pytest
from django.core.exceptions import ValidationError

from apps.inference import serving
from apps.inference.models import CHAT_TEMPLATE_TOKENS, ModelDeployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]
SMOLLM2 = ModelDeployment.Source.SMOLLM2


def _generation(cap: int, **fields) -> ModelDeployment:
    return ModelDeployment(name="g-small", source=SMOLLM2, task="generation", device="cpu", quantization="fp32",
                           max_input_tokens=cap, **fields)  # fmt: skip


@pytest.mark.parametrize("cap", [8, 16, 30])
def test_admin_refuses_a_cap_the_chat_template_fills(cap):
    with pytest.raises(ValidationError) as refused:
        _generation(cap).full_clean()
    assert refused.value.message_dict == {
        "max_input_tokens": ["At least 31: the model's chat template adds 30 tokens to every prompt."]
    }
    _generation(31).full_clean()


def test_a_prompt_past_the_cap_names_the_templates_share(api, token):
    row = _generation(31)
    row.save()  # as a row written before the check
    response = api.post("/api/v1/inference/g-small/generate", {"prompt": "hi there, doctor"}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 400, response.content
    [message] = response.json()["errors"]["prompt"]
    assert message.endswith("(30 of them the chat template's, added to every prompt); g-small takes at most 31.")
    assert serving.served(row).runner.template_tokens == CHAT_TEMPLATE_TOKENS[SMOLLM2]  # the constant is the model's
