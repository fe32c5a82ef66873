"""The cap on the texts an embedding deployment has waiting or running in one process: past
EMBED_QUEUE_BATCHES full batches a call is a 503 embeddings_busy at once, and its slots come back however the
call ends. Real MiniLM weights; the model is held on cue by a stand-in around the real batch function (as the
generation cap's test holds SmolLM2), so that the queue stays full while the next call comes."""

import threading
import time
from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create
from apps.inference import services, serving
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db

URL = "/api/v1/inference/clinical-embeddings/embed"


@pytest.fixture
def embeddings(monkeypatch):
    """Batches of 2 texts, 2 batches at most: 4 texts wait or run at once."""
    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    embeddings, _ = services.bundled_deployments_ensure()
    embeddings.max_batch_size = 2
    embeddings.save()
    monkeypatch.setattr(serving, "EMBED_QUEUE_BATCHES", 2)
    return embeddings


@pytest.fixture
def post(api, issue_token):
    token = issue_token("inference", "patient:read")

    def call(inputs: list[str], **extra):
        return api.post(URL, {"inputs": inputs, **extra}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")

    return call


@pytest.fixture
def held_model(embeddings, monkeypatch):
    """The deployment's batches wait for `release` before the real model runs them."""
    batcher = serving.served(embeddings).batcher
    running, release, real_run = threading.Event(), threading.Event(), batcher.run_batch

    def held(texts):
        running.set()
        release.wait(60)
        return real_run(texts)

    monkeypatch.setattr(batcher, "run_batch", held)
    yield running, release
    release.set()


def _wait_until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def _in_use(embeddings) -> int:
    return serving.embedding_slots.in_use(embeddings)


def test_texts_are_admitted_up_to_the_bound_and_a_call_past_it_is_a_503_at_once(embeddings, post, held_model):
    """Before, each embed call waited in a server thread for its batches, up to 120 s, however many texts
    were queued: a flood of calls held every thread of the process. Texts count, not calls: a call of 3 and
    one of 1 fill the 4 places; the next call is refused, on the API with the JSON error and Retry-After, and
    a call about a patient is audited as a refused generation is. A cached answer is still served."""
    patient = patient_create(mrn="MRN-000311", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    assert post(["kept in the cache"]).status_code == 200
    running, release = held_model
    answers: dict[str, list] = {}

    def call(name: str, texts: list[str]) -> None:
        answers[name] = serving.embed(embeddings, texts)[0]

    three = threading.Thread(target=call, args=("three", ["fever", "cough", "chest pain"]), daemon=True)
    one = threading.Thread(target=call, args=("one", ["dizziness"]), daemon=True)
    try:
        three.start()
        assert running.wait(30) and _wait_until(lambda: _in_use(embeddings) == 3)
        one.start()  # 3 texts ahead of it, under the 4: admitted
        assert _wait_until(lambda: _in_use(embeddings) == 4)
        with pytest.raises(serving.EmbeddingsFull):
            serving.embed(embeddings, ["one text more"])
        before = AuditEvent.objects.count()
        refused = post(["one text more"], patient_id=patient.pk)
        assert refused.status_code == 503, refused.content
        assert refused["Retry-After"] == "2"
        assert refused.json() == {"detail": "This deployment's embedding queue is full on this server; retry shortly.",
                                  "code": "embeddings_busy"}  # fmt: skip
        events = list(AuditEvent.objects.order_by("id")[before:])
        assert [(e.patient_id, e.resource_id, e.outcome) for e in events] == [
            (patient.pk, "clinical-embeddings", "error")
        ]
        cached = post(["kept in the cache"])
        assert cached.status_code == 200 and cached.json()["cached"] is True
    finally:
        release.set()
        three.join(120)
        one.join(120)
    assert [len(answers["three"]), len(answers["one"])] == [3, 1]
    assert _in_use(embeddings) == 0
    assert post(["one text more"]).status_code == 200


def test_a_call_of_more_texts_than_the_bound_is_admitted_when_nothing_waits(embeddings, post):
    """64 inputs against a cap of 4 texts: let in behind an empty queue, else it could never be served."""
    response = post([f"symptom {n}" for n in range(6)])
    assert response.status_code == 200, response.content
    assert len(response.json()["embeddings"]) == 6
    assert _in_use(embeddings) == 0


def test_the_slots_come_back_when_the_call_is_answered_fails_or_times_out(embeddings, monkeypatch):
    assert len(serving.embed(embeddings, ["fever", "cough"])[0]) == 2
    assert _in_use(embeddings) == 0

    def failing(texts):
        raise RuntimeError("the model failed")

    batcher = serving.served(embeddings).batcher
    real_run = batcher.run_batch
    monkeypatch.setattr(batcher, "run_batch", failing)
    with pytest.raises(serving.InferenceFailed):  # the model's error, as the view answers it (503)
        serving.embed(embeddings, ["fever", "cough", "rash"])
    assert _in_use(embeddings) == 0
    monkeypatch.setattr(batcher, "run_batch", real_run)
    monkeypatch.setattr(serving, "EMBED_TIMEOUT_SECONDS", 1e-6)  # less than the batcher's queue delay
    with pytest.raises(serving.InferenceTimeout):
        serving.embed(embeddings, ["fever", "cough", "rash"])
    assert _in_use(embeddings) == 0
