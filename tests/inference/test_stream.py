"""Streamed generation (`"stream": true`): the model runs in a thread of its own while the response is sent.
Real SmolLM2 weights and tokenizer; where a model must fail part-way, a stand-in for it (a real model has no
way to be made to fail on cue) drives the real streamer."""

import threading
import time

import pytest

from apps.inference import services, serving
from apps.inference.backends import GenerationFailed, Generator, LoadSpec, load
from apps.inference.models import ModelDeployment
from apps.ratelimits.models import RateLimitPolicy
from tests.inference.support import FailingModel

SPEC = LoadSpec(ModelDeployment.Source.SMOLLM2, "", "generation", "cpu", 512)


def _stream_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "inference-stream"]


def test_a_reader_that_leaves_stops_the_generation():
    """The client went away (Django closes the response's iterator): the model's thread used to run on to
    the token cap, for no one, beside the requests still being served."""
    runner = load(SPEC, "fp32")
    chunks = runner.stream("Write a long story about a night shift in a hospital.", 400)
    assert next(chunks) and next(chunks)
    chunks.close()
    deadline = time.monotonic() + 10
    while _stream_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _stream_threads(), "the generation went on after its reader left"


def test_a_generation_that_fails_part_way_raises_at_once_not_after_the_token_timeout():
    real = load(SPEC, "fp32")
    runner = Generator(real.tokenizer, FailingModel(), "cpu", "fp32", real.max_tokens, real.tokenizing)
    outcome: dict = {}

    def read() -> None:
        received = []
        try:
            for text in runner.stream("Name one vital sign.", 8):
                received.append(text)
        except GenerationFailed as failed:
            outcome["error"] = failed
        outcome["received"] = received

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=15)  # before: the reader waited for its next token for 300 s
    assert not reader.is_alive(), "the reader still waits for a token that will never come"
    assert "the model failed part-way" in str(outcome["error"])


@pytest.mark.django_db
def test_the_event_stream_ends_with_an_error_event_when_the_model_fails(api, issue_token, caplog):
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    _, assistant = services.bundled_deployments_ensure()
    current = serving.served(assistant)
    real_model = current.runner.model
    current.runner.model = FailingModel()
    try:
        response = api.post("/api/v1/inference/clinical-assistant/generate",
                            {"prompt": "Name one vital sign.", "max_new_tokens": 8, "stream": True}, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
    finally:
        current.runner.model = real_model
    assert body.count('data: {"text"') >= 1
    assert "event: error\ndata: " in body and '"code": "inference_failed"' in body and "event: done" not in body
    assert "Name one vital sign" not in caplog.text  # the prompt stays out of the log


@pytest.mark.django_db
def test_a_stream_response_closed_before_it_was_sent_stops_the_generation(api, issue_token):
    """The generation starts as the view answers; Django closes a response it never sends (the client left
    first), and that close reached only the events' generator, which had not started."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    _, assistant = services.bundled_deployments_ensure()
    assistant.max_new_tokens = 400  # run to its cap, it would go on for half a minute and more
    assistant.save()
    serving.served(assistant).runner.generate(["Warm up."], 2)  # the first run of a process is slow
    response = api.post("/api/v1/inference/clinical-assistant/generate",
                        {"prompt": "Write a long story about a night shift.", "max_new_tokens": 400, "stream": True},
                        format="json", HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
    assert response.status_code == 200 and _stream_threads()
    response.close()
    deadline = time.monotonic() + 5  # a token takes ~50-100 ms here
    while _stream_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _stream_threads(), "the generation went on after its response was closed unsent"
