"""The cap on streams a deployment runs at once in one process (`max_concurrent_streams`): past it a stream
is a 503 with Retry-After, and the slot comes back however the stream ends. Real SmolLM2 weights; where the
model must fail part-way, the stand-in of tests/inference/support.py (a real model cannot be made to fail on cue)."""

import json
import threading
import time
from datetime import date
from unittest import mock

import pytest
from django.core.signals import request_finished

from apps.clinical.services import patient_create
from apps.inference import services, serving
from apps.ratelimits.models import RateLimitPolicy
from tests.inference.support import FailingModel

pytestmark = pytest.mark.django_db

URL = "/api/v1/inference/clinical-assistant/generate"


@pytest.fixture
def assistant():
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    _, assistant = services.bundled_deployments_ensure()
    assistant.max_concurrent_streams, assistant.max_new_tokens = 1, 400
    assistant.save()
    serving.served(assistant).runner.generate(["Warm up."], 2)  # the first run of a process is slow
    return assistant


@pytest.fixture
def open_stream(api, issue_token):
    token = issue_token("inference", "patient:read")

    def post(prompt: str = "Write a long story about a night shift.", max_new_tokens: int = 400, **extra):
        body = {"prompt": prompt, "max_new_tokens": max_new_tokens, "stream": True, **extra}
        return api.post(URL, body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")

    return post


def _client_leaves(response) -> None:
    """What a WSGI server does when its client is gone: it closes the response. The request_finished signal
    that sends would close the test's database connection (close_old_connections) mid-test; it is held off,
    as the test client's own wrapper of a streamed response does."""
    with mock.patch.object(request_finished, "send", return_value=[]):
        response.close()


def _slots_free(assistant, seconds: float = 15) -> bool:
    """Whether the deployment's slots come back within `seconds` (a stopped model ends at its next token)."""
    deadline = time.monotonic() + seconds
    while serving.stream_slots.in_use(assistant) and time.monotonic() < deadline:
        time.sleep(0.02)
    return serving.stream_slots.in_use(assistant) == 0


def test_a_stream_past_the_deployments_cap_is_a_503_with_retry_after_until_one_ends(assistant, open_stream):
    """Before, any number of streams ran at once, each a model run in a thread of its own: one client with a
    valid token could take every thread and core of the serving process."""
    running = open_stream()
    assert running.status_code == 200
    refused = open_stream()
    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] and refused.json()["code"] == "streams_busy"
    _client_leaves(running)  # the client left before its first event
    assert _slots_free(assistant), "the slot of a stream closed unsent was never given back"
    again = open_stream()
    assert again.status_code == 200
    _client_leaves(again)
    assert _slots_free(assistant)


def test_a_stream_read_to_its_end_gives_its_slot_back_before_the_reader_sees_the_end(assistant, open_stream):
    """The `done` event means the slot is free: the same client's next stream is not refused."""
    for _ in range(2):
        response = open_stream("Name one vital sign.", 6)
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
        assert "event: done" in body
        assert serving.stream_slots.in_use(assistant) == 0


def test_a_client_that_leaves_part_way_gives_its_slot_back(assistant, open_stream):
    response = open_stream()
    events = iter(response.streaming_content)
    assert json.loads(next(events).decode()[6:])["text"]
    _client_leaves(response)
    assert _slots_free(assistant), "the slot of a client that left was never given back"
    assert open_stream("Name one vital sign.", 4).status_code == 200


def test_a_stream_that_fails_part_way_gives_its_slot_back(assistant, open_stream):
    current = serving.served(assistant)
    real_model = current.runner.model
    current.runner.model = FailingModel()
    try:
        response = open_stream("Name one vital sign.", 8)
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
    finally:
        current.runner.model = real_model
    assert "event: error" in body
    assert serving.stream_slots.in_use(assistant) == 0


def test_a_stream_refused_before_it_starts_gives_its_slot_back(assistant, open_stream, monkeypatch):
    """A patient who does not exist (a 400), or a model that cannot start the stream: no slot is kept."""
    assert open_stream("Name one vital sign.", 4, patient_id=424242).status_code == 400
    assert serving.stream_slots.in_use(assistant) == 0

    def broken(*args, **kwargs):
        raise RuntimeError("the stream could not start")

    monkeypatch.setattr(serving.served(assistant).runner, "stream", broken)
    with pytest.raises(RuntimeError):
        open_stream("Name one vital sign.", 4)
    assert serving.stream_slots.in_use(assistant) == 0
    monkeypatch.undo()
    patient = patient_create(mrn="MRN-000123", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    response = open_stream("Name one vital sign.", 4, patient_id=patient.pk)
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert serving.stream_slots.in_use(assistant) == 0


def test_a_full_server_answers_alike_for_any_patient(assistant, open_stream):
    """The slot is taken before the patient check: a 503 tells no existing patient from a missing one."""
    patient = patient_create(mrn="MRN-000124", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    running = open_stream()
    try:
        answers = [open_stream(patient_id=patient_id) for patient_id in (patient.pk, 999_999)]
        assert [answer.status_code for answer in answers] == [503, 503]
        assert answers[0].content == answers[1].content
    finally:
        _client_leaves(running)
    assert _slots_free(assistant)


def _wait_until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_generation_past_its_deployments_queue_is_a_503_at_once_and_its_slot_comes_back(
    assistant, api, issue_token, monkeypatch
):
    """Each generation waited in a server thread for its batch, up to 300 s, however many were waiting: a
    flood of them held every thread of the process, and its other endpoints waited. Past
    GENERATION_QUEUE_BATCHES full batches (here 2 of 1) a generation is refused at once. The model is held
    on cue (a stand-in around the real one) so that the queue stays full while the next call comes."""
    assistant.max_batch_size = 1
    assistant.save()
    monkeypatch.setattr(serving, "GENERATION_QUEUE_BATCHES", 2)
    current = serving.served(assistant)
    running, release, real_generate = threading.Event(), threading.Event(), current.runner.generate

    def held_generate(prompts, limits, **options):
        running.set()
        release.wait(60)
        return real_generate(prompts, limits, **options)

    monkeypatch.setattr(current.runner, "generate", held_generate)
    waiting = [threading.Thread(target=serving.generate, args=(assistant, f"Name vital sign {n}.", 2), daemon=True)
               for n in range(2)]  # fmt: skip
    for thread in waiting:
        thread.start()
    try:
        assert running.wait(30) and _wait_until(lambda: serving.generation_slots.in_use(assistant) == 2)
        with pytest.raises(serving.GenerationsFull):
            serving.generate(assistant, "One more.", 2)
        response = api.post(URL, {"prompt": "One more, please.", "max_new_tokens": 2}, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
        assert response.status_code == 503, response.content
        assert response["Retry-After"] and response.json()["code"] == "generations_busy"
    finally:
        release.set()
        for thread in waiting:
            thread.join(120)
    assert serving.generation_slots.in_use(assistant) == 0
    monkeypatch.setattr(serving, "GENERATE_TIMEOUT_SECONDS", 1e-6)  # a call that times out gives its slot back
    with pytest.raises(serving.InferenceTimeout):
        serving.generate(assistant, "Too late.", 2)
    assert serving.generation_slots.in_use(assistant) == 0
