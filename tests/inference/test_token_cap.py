"""Inputs past the token cap are judged on their start: only a prefix long enough to pass the cap is
tokenized (64 texts of 20,000 characters took 1.5 to 8.6 s of tokenizing, under the tokenizer's lock that
the batcher shares, only to be refused). Real MiniLM and SmolLM2 tokenizers; what is asserted is how much
text reached the tokenizer, and that the verdict is the whole text's."""

import pytest

from apps.inference import serving
from apps.inference.backends import PREFIX_CHARS_PER_TOKEN, LoadSpec, cap_prefix, load
from apps.inference.models import ModelDeployment
from apps.ratelimits.models import RateLimitPolicy

WORDS = "patient reports chest pain radiating to the left arm with dyspnoea, nausea and troponin 0.42 ng/mL".split()


def clinical_text(characters: int, offset: int = 0) -> str:
    words, size, n = [], 0, offset
    while size < characters:
        word = WORDS[n % len(WORDS)]
        words.append(word)
        size, n = size + len(word) + 1, n + 1
    return " ".join(words)[:characters]


class RecordingTokenizer:
    """The runner's tokenizer, noting the length of every text it is given."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.lengths = tokenizer, []

    def __call__(self, text, **options):
        self.lengths.append(len(text))
        return self.tokenizer(text, **options)

    def apply_chat_template(self, messages, **options):
        self.lengths.append(len(messages[-1]["content"]))
        return self.tokenizer.apply_chat_template(messages, **options)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "endpoint", "body"),
    [
        ("clinical-embeddings", "embed", {"inputs": [clinical_text(20_000, n) for n in range(8)]}),
        ("clinical-assistant", "generate", {"prompt": clinical_text(20_000), "max_new_tokens": 1}),
    ],
)
def test_a_long_input_is_refused_on_its_start(api, issue_token, monkeypatch, name, endpoint, body):
    from apps.inference import services

    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    services.bundled_deployments_ensure()
    runner = serving.served(ModelDeployment.objects.get(name=name)).runner
    recording = RecordingTokenizer(runner.tokenizer)
    monkeypatch.setattr(runner, "tokenizer", recording)
    response = api.post(f"/api/v1/inference/{name}/{endpoint}", body, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    messages = [errors["prompt"][0]] if "prompt" in errors else [errors["inputs"][str(n)][0] for n in range(8)]
    assert all(f"takes at most {runner.max_tokens}." in message for message in messages)
    assert recording.lengths and max(recording.lengths) <= PREFIX_CHARS_PER_TOKEN * (runner.max_tokens + 1)


def test_the_prefix_ends_before_a_space_after_a_word():
    text = "alpha beta   gamma delta" + " epsilon" * 100
    cut = cap_prefix(text, 2)  # judged on its first 24 characters at most
    assert cut == "alpha beta   gamma delta"
    assert cap_prefix("short text", 2) is None
    assert cap_prefix("x" * 1000, 2) is None  # no space: read whole
    assert cap_prefix("   " + "y" * 1000, 2) is None  # spaces, but none after a word


@pytest.fixture(scope="module")
def runners():
    minilm = load(LoadSpec(ModelDeployment.Source.MINILM, "", "embedding", "cpu", 256), "fp32")
    smollm = load(LoadSpec(ModelDeployment.Source.SMOLLM2, "", "generation", "cpu", 512), "fp32")
    return minilm, smollm


def test_the_verdict_on_a_prefix_is_the_whole_texts(runners):
    """Over the cap on its start means over it whole; under it, the count is exact. Texts cut inside words,
    long runs of spaces, few tokens in many characters, tokens only past the start, no spaces at all."""
    cap = 16
    size = PREFIX_CHARS_PER_TOKEN * (cap + 1)
    lengths = (size - 3, size, size + 1, size + 7, 600)
    texts = [clinical_text(length, offset) for length in lengths for offset in range(5)]
    texts += [
        "fever" + " " * 2000 + "cough",  # under the cap in 2,010 characters
        "fever" + " " * 2000 + " cough" * 40,  # past it only after the start
        "tachycardia" * 60,  # no space: read whole
        "blood pressure 120/80 mmHg; heart rate 96 bpm; " * 12,
        "\n".join(clinical_text(40, n) for n in range(20)),
        "心电图 " * 200,
    ]
    for runner in runners:
        for text in texts:
            whole = runner.token_count(text)
            judged = runner.token_count(text, cap)
            assert (judged > cap) == (whole > cap), (runner.task, text[:60])
            assert judged <= whole
            if whole <= cap:
                assert judged == whole
